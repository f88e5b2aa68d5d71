// Small helpers shared by the subcommands.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace huginn {
class Model;
}

namespace huginn::cli {

// "1,2,3" -> {1, 2, 3}; throws huginn::Error naming the bad element.
std::vector<int32_t> parse_ids(const std::string& text, const std::string& option = "--ids");
// "4,32" -> {4, 32} (positive integers).
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& option);
std::string read_text_file(const std::string& path);
// The stored dtype holding most of a model's parameters, e.g. "Q8_0".
std::string main_dtype(const Model& m);

}  // namespace huginn::cli
