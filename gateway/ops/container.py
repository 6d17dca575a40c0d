"""Start-up steps for a node in a container (`python -m gateway.ops.container prepare`).

Run by docker/entrypoint.sh before `gateway serve`, idempotently:

1. With `GATEWAY_KEK_PROVIDER=pkcs11`, create KEK version v1 in the token if it holds none
   (the token itself is initialised by the entrypoint with softhsm2-util).
2. `gateway init`: keys, migrations, index secret, audit store.
3. Publish the node's public material for the federation authority in `DATA_DIR/public/`:
   its signing key as a public JWK and its audit-log verifier key. Nothing secret goes there.
"""

from __future__ import annotations

import json
import sys

from gateway.settings import Settings


def _ensure_pkcs11_kek(settings: Settings) -> bool:
    from gateway.keys.hsm import Pkcs11KekProvider, Pkcs11Settings, init_pkcs11_kek

    config = Pkcs11Settings(
        token_label=settings.pkcs11_token_label,
        module_path=settings.pkcs11_module,
        pin_file=settings.pkcs11_pin_file,
    )
    try:
        Pkcs11KekProvider(config).close()
        return False
    except Exception:
        # No KEK version yet (a new token): create v1. Any other problem (wrong PIN, no token)
        # makes init_pkcs11_kek fail the same way, and the container stops.
        init_pkcs11_kek(config)
        return True


def prepare(settings: Settings) -> list[str]:
    from gateway.identity.signing import load_signing_key_file
    from gateway.node import init_node
    from gateway.node_offline import verifier_key

    done: list[str] = []
    if settings.kek_provider == "pkcs11" and _ensure_pkcs11_kek(settings):
        done.append("KEK v1 created in the PKCS#11 token")
    done.extend(init_node(settings))
    public = settings.data_dir / "public"
    public.mkdir(exist_ok=True)
    key = load_signing_key_file(settings.signing_key_file)
    (public / "node.pub.jwk").write_text(json.dumps(key.public_jwk()), encoding="utf-8")
    (public / "log.vkey").write_text(verifier_key(settings) + "\n", encoding="utf-8")
    done.append("public keys published in data_dir/public")
    return done


def main(argv: list[str]) -> int:
    if argv != ["prepare"]:
        print("usage: python -m gateway.ops.container prepare", file=sys.stderr)
        return 2
    for item in prepare(Settings()):
        print(f"- {item}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
