#include "model/arch/forward.h"

namespace bitnet::model {

ForwardFn forward_for(Arch arch) {
  switch (arch) {
    case Arch::kBitnet:
    case Arch::kBitnetB158:
    case Arch::kBitnet25:
      break;
  }
  return &forward_bitnet;
}

}  // namespace bitnet::model
