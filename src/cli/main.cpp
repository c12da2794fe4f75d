// The `bitnet` command line: one binary, one subcommand per job (entry.cpp holds its main).
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "cli/command.h"

namespace bitnet::cli {

int fail(const Error& e) { return fail(e.message); }

int fail(const std::string& message) {
  std::fprintf(stderr, "bitnet: error: %s\n", message.c_str());
  return kExitFailure;
}

std::string env_var(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

int run_main(int argc, char** argv) {
  CLI::App app{"bitnet: inference, tracing and cross-validation for BitNet b1.58 models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "bitnet 0.1.0");

  std::vector<Command> commands;
  for (auto reg : {register_inspect, register_synth, register_run, register_chat, register_tokenize,
                   register_bench, register_trace, register_crossval, register_perplexity,
                   register_serve, register_quantize, register_convert}) {
    auto cmds = reg(app);
    commands.insert(commands.end(), cmds.begin(), cmds.end());
  }

  // CLI11 reports an unknown subcommand as "a subcommand is required"; name it instead.
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    for (const Command& c : commands) known = known || c.app->get_name() == argv[1];
    if (!known) {
      std::fprintf(stderr, "bitnet: error: unknown command '%s' (see 'bitnet --help')\n", argv[1]);
      return kExitUsage;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help / --version (on the app or a subcommand): CLI11 prints the right text.
    if (e.get_exit_code() == 0) return app.exit(e);
    std::string msg = e.what();
    for (char& c : msg) {
      if (c == '\n') c = ' ';
    }
    std::fprintf(stderr, "bitnet: error: %s (see 'bitnet --help')\n", msg.c_str());
    return kExitUsage;
  }
  for (const Command& c : commands) {
    if (c.app->parsed()) return c.run();
  }
  return fail("no subcommand given (see 'bitnet --help')");
}

int main_guarded(int argc, char** argv) {
  try {
    return run_main(argc, argv);
  } catch (const std::bad_alloc&) {
    return fail("out of memory");
  } catch (const std::exception& e) {
    return fail(std::string("unexpected: ") + e.what());
  }
}

}  // namespace bitnet::cli
