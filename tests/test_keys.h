// Keys for the receipt-signing tests, made with OpenSSL's API while the test runs (no key is
// committed): Ed25519 key pairs written as the PEM files `openssl genpkey -algorithm ed25519`
// and `openssl pkey -pubout` write, and a key of another type for the error paths. Tests that
// include this link OpenSSL::Crypto.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdio>
#include <memory>
#include <string>

namespace bitnet::test {

struct KeyPairFiles {
  std::string private_pem;  // -----BEGIN PRIVATE KEY-----
  std::string public_pem;   // -----BEGIN PUBLIC KEY-----
};

// Writes a fresh key pair of type ("ED25519", or "EC" for a P-256 key) as prefix.key.pem and
// prefix.pub.pem; empty names when OpenSSL fails (the caller's ASSERT then fails).
inline KeyPairFiles write_key_pair(const std::string& prefix, const std::string& type = "ED25519") {
  struct Free {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  };
  std::unique_ptr<EVP_PKEY, Free> key(type == "EC"
                                          ? EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")
                                          : EVP_PKEY_Q_keygen(nullptr, nullptr, type.c_str()));
  if (!key) return {};
  KeyPairFiles files{prefix + ".key.pem", prefix + ".pub.pem"};
  FILE* f = std::fopen(files.private_pem.c_str(), "w");
  if (f == nullptr) return {};
  const bool priv_ok =
      PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1;
  std::fclose(f);
  f = std::fopen(files.public_pem.c_str(), "w");
  if (f == nullptr) return {};
  const bool pub_ok = PEM_write_PUBKEY(f, key.get()) == 1;
  std::fclose(f);
  if (!priv_ok || !pub_ok) return {};
  return files;
}

// Writes the Ed25519 private key with this 32-byte seed (e.g. RFC 8032's test key) as path.
inline bool write_ed25519_seed_key(const std::string& path, const unsigned char* seed) {
  std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)> key(
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed, 32), EVP_PKEY_free);
  if (!key) return false;
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return false;
  const bool ok = PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1;
  std::fclose(f);
  return ok;
}

}  // namespace bitnet::test
