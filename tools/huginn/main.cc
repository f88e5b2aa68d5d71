// huginn: one binary, many subcommands (run `huginn --help`).
#include <cstdio>
#include <exception>
#include <vector>

#include "huginn/error.h"
#include "commands.h"

namespace huginn::cli {

static std::vector<SetupFn>& registry() {
  static std::vector<SetupFn> fns;
  return fns;
}

int register_command(SetupFn fn) {
  registry().push_back(fn);
  return 0;
}

}  // namespace huginn::cli

int main(int argc, char** argv) {
  CLI::App app{"huginn.cpp: inference for recurrent-depth language models (Huginn-0125)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "huginn 0.1.0");
  for (auto fn : huginn::cli::registry()) fn(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const huginn::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
