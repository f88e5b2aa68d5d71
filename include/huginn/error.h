// Errors: every failure the library reports is a huginn::Error whose message
// names what was wrong (file, tensor, key, option) so users can act on it.
#pragma once

#include <stdexcept>
#include <string>

namespace huginn {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace huginn
