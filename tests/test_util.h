// Helpers shared by the test binaries: where the golden data is, running the
// CLI, reading golden arrays.
#pragma once

#include <string>
#include <vector>

#include "golden_dir.h"  // golden_dir(): ../shared/golden, or $HUGINN_GOLDEN_DIR

namespace huginn::test {

// Path of the built `huginn` executable.
std::string cli_path();

struct CliResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs `huginn <args>` (args are shell-quoted here) with optional stdin text.
CliResult run_cli(const std::vector<std::string>& args, const std::string& stdin_text = "");

std::string read_file(const std::string& path);
// A fresh temporary directory, removed by the OS later (under /tmp).
std::string temp_dir();

}  // namespace huginn::test
