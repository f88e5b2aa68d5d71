// Where the reference outputs live: $HUGINN_GOLDEN_DIR when set, else the
// path CMake compiled in (../shared/golden next to the checkout). Shared by
// the tests, the benchmarks and the fuzzers.
#pragma once

#include <cstdlib>
#include <string>

namespace huginn::test {

inline std::string golden_dir() {
  if (const char* e = std::getenv("HUGINN_GOLDEN_DIR")) return e;
#ifdef HUGINN_GOLDEN_DIR
  return HUGINN_GOLDEN_DIR;
#else
  return "../shared/golden";
#endif
}

}  // namespace huginn::test
