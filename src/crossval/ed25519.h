// Ed25519 keys and signatures for receipts (`bitnet crossval --sign KEY.pem`, `bitnet receipt
// verify --key PUB.pem`), through OpenSSL's EVP API. Keys are read from PEM files as OpenSSL
// writes them:
//   openssl genpkey -algorithm ed25519 -out key.pem          private key  (--sign)
//   openssl pkey -in key.pem -pubout -out pub.pem            its public key (--key)
// Inside a receipt a public key is its raw 32 bytes in hex; a key is named by its fingerprint,
// the first 16 hex digits of the SHA-256 of those 32 bytes.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/result.h"

struct evp_pkey_st;  // OpenSSL's EVP_PKEY (kept out of this header)

namespace bitnet::crossval {

using PublicKey = std::array<uint8_t, 32>;  // a raw Ed25519 public key

class SigningKey {
 public:
  // A PEM Ed25519 private key. Errors (one line, starting with the path): the file cannot be
  // read, is not PEM, holds a public key, an encrypted key, or a key of another type.
  static Result<SigningKey> from_pem_file(const std::string& path);
  const PublicKey& public_key() const { return public_key_; }
  // The 64-byte Ed25519 signature of message (raw bytes).
  Result<std::string> sign(std::string_view message) const;

 private:
  std::shared_ptr<evp_pkey_st> pkey_;
  PublicKey public_key_{};
};

// A PEM Ed25519 public key ("-----BEGIN PUBLIC KEY-----"). A private key is refused (a verifier
// needs only the public half), as are other key types.
Result<PublicKey> read_public_key_pem(const std::string& path);

// Whether signature (64 raw bytes) is key's Ed25519 signature of message.
bool ed25519_verify(const PublicKey& key, std::string_view message, std::string_view signature);

// The first 16 hex digits of SHA-256(key): how receipts and messages name a key.
std::string key_fingerprint(const PublicKey& key);

// Lowercase hex of bytes, and back (false when text is not exactly 2 * out.size() hex digits).
std::string to_hex(std::string_view bytes);
bool from_hex(std::string_view text, std::string* out, size_t n_bytes);

}  // namespace bitnet::crossval
