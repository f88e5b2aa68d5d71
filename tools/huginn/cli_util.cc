#include "cli_util.h"

#include "huginn/model.h"

#include <charconv>
#include <fstream>
#include <sstream>

#include "huginn/error.h"

namespace huginn::cli {

namespace {
template <typename T>
std::vector<T> parse_list(const std::string& text, const std::string& option) {
  std::vector<T> out;
  if (text.empty()) throw Error(option + ": empty list");
  size_t start = 0;
  while (true) {
    size_t end = text.find(',', start);
    std::string item = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    // Surrounding spaces are tolerated ("1, 2, 3").
    size_t a = item.find_first_not_of(" \t"), b = item.find_last_not_of(" \t");
    item = a == std::string::npos ? "" : item.substr(a, b - a + 1);
    T v{};
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || p != item.data() + item.size())
      throw Error(option + ": '" + item + "' is not an integer (expected a comma-separated list like 1,2,3)");
    out.push_back(v);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}
}  // namespace

std::vector<int32_t> parse_ids(const std::string& text, const std::string& option) {
  auto ids = parse_list<int32_t>(text, option);
  for (auto id : ids)
    if (id < 0) throw Error(option + ": token id " + std::to_string(id) + " is negative");
  return ids;
}

std::vector<int64_t> parse_int_list(const std::string& text, const std::string& option) {
  auto v = parse_list<int64_t>(text, option);
  for (auto x : v)
    if (x <= 0) throw Error(option + ": values must be positive, got " + std::to_string(x));
  return v;
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot open " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string main_dtype(const Model& m) {
  std::string best;
  int64_t n = -1;
  for (const auto& [dt, count] : m.dtype_mix())
    if (count > n) best = dt, n = count;
  return best;
}

}  // namespace huginn::cli
