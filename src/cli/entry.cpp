// The `bitnet` binary's entry point; everything else of the command line is in the
// bitnet_cli library, which test programs link with their own main (tests/cli).
#include "cli/command.h"

int main(int argc, char** argv) { return bitnet::cli::main_guarded(argc, argv); }
