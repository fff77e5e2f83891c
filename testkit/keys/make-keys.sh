#!/usr/bin/env bash
# Regenerates the test-only signing keys in this folder. They sign tokens in tests and the demo;
# they protect nothing. PKCS#8 DER (`-topk8`: genpkey's DER output is PKCS#1 for RSA).
set -euo pipefail
cd "$(dirname "$0")"
make_rsa() {
  openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$1" 2>/dev/null \
    | openssl pkcs8 -topk8 -nocrypt -outform DER -out "$2"
}
make_rsa 1024 rsa-1024.pk8.der
make_rsa 2048 rsa-2048.pk8.der
make_rsa 2048 rsa-2048-rotated.pk8.der
make_rsa 3072 rsa-3072.pk8.der
