#!/bin/sh
# Creates docker/secrets/ with random values (mode 0600) for compose.yaml. Never overwrites.
set -eu
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
new() { [ -f "secrets/$1" ] || python3 -c "import secrets; print(secrets.token_urlsafe($2))" > "secrets/$1"; }
for force in 05 20 01; do
  new "auditor_token_${force}" 32
  new "db_password_${force}" 24
  new "hsm_pin_${force}" 12
  new "hsm_so_pin_${force}" 12
  if [ ! -f "secrets/database_url_${force}" ]; then
    printf 'postgresql+psycopg://gateway:%s@db-%s:5432/gateway\n' \
      "$(cat "secrets/db_password_${force}")" "${force}" > "secrets/database_url_${force}"
  fi
done
echo "secrets written to $(pwd)/secrets (keep them out of version control)"
