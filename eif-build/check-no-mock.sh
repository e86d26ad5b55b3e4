#!/usr/bin/env bash
# Fails if an enclave binary has the mock NSM compiled in.
#   eif-build/check-no-mock.sh BINARY
# The markers are strings only the mock NSM's code holds (its CA's subject and state file,
# and the enclave's warning when it runs with it); a production binary has none of them.
set -euo pipefail
if [ $# -ne 1 ] || [ ! -f "$1" ]; then
  echo "usage: $0 ENCLAVE-BINARY" >&2
  exit 2
fi
found=()
for marker in "Strongroom mock NSM" "mock-nsm-ca.pem" "running with the MOCK NSM"; do
  if grep -qaF -- "$marker" "$1"; then
    found+=("$marker")
  fi
done
if [ ${#found[@]} -gt 0 ]; then
  printf '%s: the mock NSM is compiled in (found: %s); build with --no-default-features --features nitro\n' \
    "$1" "$(IFS=,; echo "${found[*]}")" >&2
  exit 1
fi
echo "$1: no mock NSM"
