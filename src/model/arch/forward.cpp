#include "model/arch/forward.h"

namespace bitnet::model {

ForwardFn forward_for(Arch arch) {
  switch (arch) {
    case Arch::kBitnet:
    case Arch::kBitnetB158:
    case Arch::kBitnet25:
      break;
    case Arch::kLlama:
      return &forward_llama;
  }
  return &forward_bitnet;
}

}  // namespace bitnet::model
