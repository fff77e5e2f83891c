#!/bin/sh
# Regenerates the certificate-credential fixtures of src/entra/tests. Test-only: these keys
# protect nothing. Needs OpenSSL 3. Run from this directory; the tests read the files with
# include_str!/include_bytes!, so commit what this writes.
set -eu
subj="/CN=gitlab-azure-oidc test certificate credential"

# The credential: a 2048-bit RSA key (PKCS#8 PEM and DER) and its self-signed certificate.
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 36500 -subj "$subj" \
  -keyout rsa-2048.key.pem -out rsa-2048.cert.pem
openssl pkcs8 -topk8 -nocrypt -in rsa-2048.key.pem -outform DER -out rsa-2048.key.pk8.der
openssl x509 -in rsa-2048.cert.pem -outform DER -out rsa-2048.cert.der
# The public key as SubjectPublicKeyInfo DER, for verifying assertions independently.
openssl pkey -in rsa-2048.key.pem -pubout -outform DER -out rsa-2048.spki.der
# The thumbprints Entra shows for the certificate (x5t = SHA-1, x5t#S256 = SHA-256), as hex.
openssl x509 -in rsa-2048.cert.pem -noout -fingerprint -sha1 | sed 's/.*=//; s/://g' > rsa-2048.cert.sha1
openssl x509 -in rsa-2048.cert.pem -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' > rsa-2048.cert.sha256

# The same key in the traditional PKCS#1 form (`BEGIN RSA PRIVATE KEY`), which must be refused
# with a conversion hint, and encrypted PKCS#8, which must be refused too.
openssl pkey -in rsa-2048.key.pem -traditional -out rsa-2048.pkcs1.pem
openssl pkcs8 -topk8 -v2 aes-256-cbc -passout pass:test -in rsa-2048.key.pem -out rsa-2048.encrypted.pem

# A second key with its own certificate: the first key with this certificate is a mismatch.
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 36500 -subj "/CN=another key" \
  -keyout other-2048.key.pem -out other-2048.cert.pem
rm other-2048.key.pem

# Keys that must be refused: RSA under 2048 bits, and an EC key.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out rsa-1024.key.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec-p256.key.pem
