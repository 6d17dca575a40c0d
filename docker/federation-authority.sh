#!/bin/sh
# The federation authority (one-shot): list each force's node with its public signing key and
# audit verifier key (published by its init job), sign the manifest, and hand manifest.jws and
# the authority's public key to the nodes through the read-only `federation` volume.
# In a real federation the authority is a separate organisation; this is the demo topology.
set -eu
AUTHORITY_DIR=/authority
PUBLISH_DIR=/federation

if [ ! -f "${AUTHORITY_DIR}/authority.key" ]; then
  gateway federation init --dir "${AUTHORITY_DIR}"
fi
for force in ${GATEWAY_FEDERATION_FORCES:?set GATEWAY_FEDERATION_FORCES, e.g. "05 20 01"}; do
  gateway federation add --dir "${AUTHORITY_DIR}" --replace \
    --force "${force}" --url "http://node-${force}:8000" \
    --signing-key "/nodes/${force}/public/node.pub.jwk" \
    --log-key "/nodes/${force}/public/log.vkey"
done
gateway federation sign --dir "${AUTHORITY_DIR}"
cp "${AUTHORITY_DIR}/manifest.jws" "${AUTHORITY_DIR}/authority.pub.jwk" "${PUBLISH_DIR}/"
echo "manifest published"
