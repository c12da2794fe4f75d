// How subcommands plug into the `bitnet` binary: each file cmd_<name>.cpp defines one
// `register_<name>` function that adds its CLI11 subcommand(s) and returns what to run.
// Library errors (Result/Status) become "bitnet: error: <message>" and exit code 1 here; bad
// flags exit with 2; only the CLI decides exit codes.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "core/result.h"

namespace bitnet::cli {

struct Command {
  CLI::App* app;             // the subcommand
  std::function<int()> run;  // called when it was chosen on the command line
};

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;  // runtime failure or (crossval) divergence
constexpr int kExitUsage = 2;    // bad flags or arguments

// Prints "bitnet: error: <message>" to stderr and returns kExitFailure.
int fail(const Error& e);
int fail(const std::string& message);

// Environment variable `name`, "" when unset. Only the CLI reads the environment: it turns the
// variables users know (BITNET_KERNELS, BITNET_HUGEPAGES, BITNET_REFERENCE_DIR, ...) into the
// options it passes to the libraries.
std::string env_var(const char* name);

// The whole command line: parses argv, runs the chosen subcommand, returns the exit code.
int run_main(int argc, char** argv);
// run_main with out-of-memory and other exceptions turned into a one-line error.
int main_guarded(int argc, char** argv);

std::vector<Command> register_inspect(CLI::App& app);
std::vector<Command> register_synth(CLI::App& app);
std::vector<Command> register_run(CLI::App& app);
std::vector<Command> register_chat(CLI::App& app);
std::vector<Command> register_tokenize(CLI::App& app);
std::vector<Command> register_bench(CLI::App& app);
std::vector<Command> register_trace(CLI::App& app);     // trace-diff, trace-show
std::vector<Command> register_crossval(CLI::App& app);  // crossval, sweep, receipt verify
std::vector<Command> register_perplexity(CLI::App& app);
std::vector<Command> register_serve(CLI::App& app);
std::vector<Command> register_quantize(CLI::App& app);
std::vector<Command> register_convert(CLI::App& app);

}  // namespace bitnet::cli
