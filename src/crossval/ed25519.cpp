#include "crossval/ed25519.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "crossval/sha256.h"

namespace bitnet::crossval {

namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

constexpr size_t kMaxKeyFileBytes = 64 * 1024;  // a PEM key is a few hundred bytes

Result<std::string> read_key_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f)
    return make_error("%s: cannot open the key file (%s)", path.c_str(), std::strerror(errno));
  std::string text;
  char buf[4096];
  while (f.read(buf, sizeof(buf)) || f.gcount() > 0) {
    text.append(buf, static_cast<size_t>(f.gcount()));
    if (text.size() > kMaxKeyFileBytes)
      return make_error("%s: too large for a key file", path.c_str());
  }
  if (f.bad()) return make_error("%s: cannot read the key file", path.c_str());
  return text;
}

// The label of the first PEM block ("PRIVATE KEY", "PUBLIC KEY", ...); "" when there is none.
std::string pem_label(const std::string& text) {
  const std::string begin = "-----BEGIN ";
  const size_t b = text.find(begin);
  if (b == std::string::npos) return "";
  const size_t s = b + begin.size();
  const size_t e = text.find("-----", s);
  if (e == std::string::npos || e - s > 64) return "";
  return text.substr(s, e - s);
}

// Never asks for a passphrase (OpenSSL's default would prompt on the terminal).
int no_passphrase(char*, int, int, void*) { return -1; }

// The reason of OpenSSL's last error (and clears the queue); "" when there is none.
std::string openssl_error() {
  const unsigned long e = ERR_peek_last_error();
  const char* reason = e != 0 ? ERR_reason_error_string(e) : nullptr;
  ERR_clear_error();
  return reason != nullptr ? reason : "";
}

PkeyPtr parse_private(const std::string& text) {
  BIO* bio = BIO_new_mem_buf(text.data(), static_cast<int>(text.size()));
  if (bio == nullptr) return nullptr;
  PkeyPtr k(PEM_read_bio_PrivateKey(bio, nullptr, no_passphrase, nullptr));
  BIO_free(bio);
  return k;
}

PkeyPtr parse_public(const std::string& text) {
  BIO* bio = BIO_new_mem_buf(text.data(), static_cast<int>(text.size()));
  if (bio == nullptr) return nullptr;
  PkeyPtr k(PEM_read_bio_PUBKEY(bio, nullptr, no_passphrase, nullptr));
  BIO_free(bio);
  return k;
}

// Checks that key is Ed25519 and returns its raw public key.
Result<PublicKey> ed25519_public(const std::string& path, EVP_PKEY* key) {
  if (EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
    const char* type = EVP_PKEY_get0_type_name(key);
    return make_error("%s: key type %s, not Ed25519 (openssl genpkey -algorithm ed25519)",
                      path.c_str(), type != nullptr ? type : "unknown");
  }
  PublicKey pub{};
  size_t len = pub.size();
  if (EVP_PKEY_get_raw_public_key(key, pub.data(), &len) != 1 || len != pub.size()) {
    const std::string why = openssl_error();
    return make_error("%s: cannot read the Ed25519 public key (%s)", path.c_str(), why.c_str());
  }
  return pub;
}

}  // namespace

Result<SigningKey> SigningKey::from_pem_file(const std::string& path) {
  BITNET_ASSIGN_OR_RETURN(const std::string text, read_key_file(path));
  const std::string label = pem_label(text);
  if (label.empty()) {
    return make_error(
        "%s: not a PEM key file (expected -----BEGIN PRIVATE KEY-----, as written by openssl "
        "genpkey -algorithm ed25519)",
        path.c_str());
  }
  if (label == "ENCRYPTED PRIVATE KEY")
    return make_error("%s: a passphrase-protected key; give an unencrypted one", path.c_str());
  PkeyPtr key = parse_private(text);
  if (!key) {
    const std::string why = openssl_error();
    if (parse_public(text)) {
      ERR_clear_error();
      return make_error("%s: a public key; signing needs the private key", path.c_str());
    }
    ERR_clear_error();
    return make_error("%s: not a readable PEM private key (%s%s%s)", path.c_str(), label.c_str(),
                      why.empty() ? "" : ": ", why.c_str());
  }
  BITNET_ASSIGN_OR_RETURN(const PublicKey pub, ed25519_public(path, key.get()));
  SigningKey s;
  s.pkey_ = std::shared_ptr<EVP_PKEY>(key.release(), PkeyFree());
  s.public_key_ = pub;
  return s;
}

Result<std::string> SigningKey::sign(std::string_view message) const {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  std::string sig(64, '\0');
  size_t len = sig.size();
  // Ed25519 hashes the message itself: no digest is given (NULL), and the one-shot call is used.
  if (!ctx || !pkey_ ||
      EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1 ||
      len != sig.size()) {
    const std::string why = openssl_error();
    return make_error("Ed25519 signing failed (%s)", why.c_str());
  }
  return sig;
}

Result<PublicKey> read_public_key_pem(const std::string& path) {
  BITNET_ASSIGN_OR_RETURN(const std::string text, read_key_file(path));
  const std::string label = pem_label(text);
  if (label.empty()) {
    return make_error(
        "%s: not a PEM key file (expected -----BEGIN PUBLIC KEY-----, as written by openssl pkey "
        "-in KEY.pem -pubout)",
        path.c_str());
  }
  PkeyPtr key = parse_public(text);
  if (!key) {
    const std::string why = openssl_error();
    if (label.find("PRIVATE KEY") != std::string::npos) {
      return make_error(
          "%s: a private key; give its public key (openssl pkey -in KEY.pem -pubout -out PUB.pem)",
          path.c_str());
    }
    return make_error("%s: not a readable PEM public key (%s%s%s)", path.c_str(), label.c_str(),
                      why.empty() ? "" : ": ", why.c_str());
  }
  return ed25519_public(path, key.get());
}

bool ed25519_verify(const PublicKey& key, std::string_view message, std::string_view signature) {
  if (signature.size() != 64) return false;
  PkeyPtr pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, key.data(), key.size()));
  MdCtxPtr ctx(EVP_MD_CTX_new());
  const bool ok =
      pkey && ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) == 1 &&
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                       signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()) == 1;
  ERR_clear_error();  // a failed verification leaves an error in the queue
  return ok;
}

std::string key_fingerprint(const PublicKey& key) {
  return sha256_hex(std::string_view(reinterpret_cast<const char*>(key.data()), key.size()))
      .substr(0, 16);
}

std::string to_hex(std::string_view bytes) {
  static const char* const kDigits = "0123456789abcdef";
  std::string s;
  s.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    s += kDigits[b >> 4];
    s += kDigits[b & 15];
  }
  return s;
}

bool from_hex(std::string_view text, std::string* out, size_t n_bytes) {
  if (text.size() != 2 * n_bytes) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string bytes(n_bytes, '\0');
  for (size_t i = 0; i < n_bytes; ++i) {
    const int hi = nibble(text[2 * i]), lo = nibble(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    bytes[i] = static_cast<char>(hi << 4 | lo);
  }
  *out = std::move(bytes);
  return true;
}

}  // namespace bitnet::crossval
