// One forward pass per architecture family, each in its own file written with the shared blocks
// (model/blocks.h). A new family is a new file and a line in forward_for(), not new branches in
// an existing forward.
#pragma once

#include "model/arch.h"
#include "model/blocks.h"

namespace bitnet::model {

using ForwardFn = void (*)(Blocks& b);

// BitNet b1.58 with sub-norms (bitnet.cpp's bitnet-b1.58 / bitnet-25, upstream llama.cpp's
// bitnet): arch/bitnet.cpp.
void forward_bitnet(Blocks& b);
// Upstream llama.cpp's llama (no sub-norms, NORM RoPE, untied head if present): arch/llama.cpp.
void forward_llama(Blocks& b);

ForwardFn forward_for(Arch arch);

}  // namespace bitnet::model
