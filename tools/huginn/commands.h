// The `huginn` binary is a set of subcommands. Each tools/huginn/cmd_*.cc file
// registers its subcommands with HUGINN_COMMAND(setup_fn), where setup_fn adds
// a CLI11 subcommand and its callback. Callbacks report failures by throwing
// huginn::Error; main() prints "error: <message>" and exits with status 1.
#pragma once

#include <CLI/CLI.hpp>

namespace huginn::cli {

using SetupFn = void (*)(CLI::App& app);

// Adds a setup function to the registry; returns a dummy so it can run at
// static-initialisation time.
int register_command(SetupFn fn);

}  // namespace huginn::cli

#define HUGINN_CONCAT_INNER(a, b) a##b
#define HUGINN_CONCAT(a, b) HUGINN_CONCAT_INNER(a, b)
#define HUGINN_COMMAND(fn) \
  [[maybe_unused]] static const int HUGINN_CONCAT(huginn_command_, __LINE__) = ::huginn::cli::register_command(fn)
