// Copies a GGUF file with edits (drop or reshape/retype a tensor, change a key), to make
// models that are wrong in one precise way.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "gguf/reader.h"
#include "gguf/writer.h"

namespace bitnet::test {

struct TensorEdit {
  bool drop = false;
  std::vector<uint64_t> dims;                  // empty: keep
  std::optional<gguf::TensorType> type;        // keep when unset
};

// `edit_tensor(name)` returns the edit for a tensor (or nullopt to keep it);
// `edit_meta(writer)` may change keys. Data of edited tensors is zero-filled to the new size.
inline Status rewrite_gguf(const std::string& src, const std::string& dst,
                           const std::function<std::optional<TensorEdit>(const std::string&)>& edit_tensor,
                           const std::function<void(gguf::Writer&)>& edit_meta = {}) {
  BITNET_ASSIGN_OR_RETURN(gguf::File f, gguf::File::open(src));
  gguf::Writer w;
  for (const auto& kv : f.metadata()) w.set(kv.key, kv.value);
  if (edit_meta) edit_meta(w);
  struct Item {
    const gguf::TensorInfo* src;
    bool edited;
  };
  std::vector<Item> items;
  for (const auto& t : f.tensors()) {
    auto e = edit_tensor(t.name);
    if (e && e->drop) continue;
    std::vector<uint64_t> dims = e && !e->dims.empty() ? e->dims : t.dims;
    gguf::TensorType type = e && e->type ? *e->type : t.type;
    BITNET_TRY(w.add_tensor(t.name, type, dims));
    items.push_back({&t, e.has_value()});
  }
  BITNET_TRY(w.begin(dst));
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].edited) {
      std::vector<uint8_t> zeros(w.tensors()[i].n_bytes, 0);
      BITNET_TRY(w.write(zeros));
    } else {
      BITNET_TRY(w.write(f.tensor_data(*items[i].src)));
    }
  }
  return w.finish();
}

}  // namespace bitnet::test
