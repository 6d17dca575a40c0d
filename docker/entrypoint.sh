#!/bin/sh
# Node start-up: initialise the SoftHSM2 token once, create the KEK and the node's keys and
# database once (idempotent), then hand over to the command (default: gateway serve).
# PINs come from files (compose secrets); they are never echoed or put in the environment.
set -eu

if [ "${GATEWAY_KEK_PROVIDER:-local}" = "pkcs11" ]; then
  : "${GATEWAY_PKCS11_TOKEN_LABEL:?set GATEWAY_PKCS11_TOKEN_LABEL}"
  : "${GATEWAY_PKCS11_PIN_FILE:?set GATEWAY_PKCS11_PIN_FILE}"
  : "${GATEWAY_PKCS11_SO_PIN_FILE:?set GATEWAY_PKCS11_SO_PIN_FILE}"
  if ! softhsm2-util --show-slots 2>/dev/null | grep -q "Label:[[:space:]]*${GATEWAY_PKCS11_TOKEN_LABEL}\$"; then
    softhsm2-util --init-token --free --label "${GATEWAY_PKCS11_TOKEN_LABEL}" \
      --pin "$(cat "${GATEWAY_PKCS11_PIN_FILE}")" \
      --so-pin "$(cat "${GATEWAY_PKCS11_SO_PIN_FILE}")" >/dev/null
    echo "SoftHSM2 token ${GATEWAY_PKCS11_TOKEN_LABEL} initialised"
  fi
fi

python -m gateway.ops.container prepare

if [ "${1:-}" = "--prepare-only" ]; then
  exit 0
fi
exec "$@"
