// Access to the golden reference data of ../shared/golden/model.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "test_util.h"

namespace huginn::test {

struct GoldenArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
  int64_t rows() const { return shape.empty() ? 1 : shape[0]; }
  int64_t row_size() const { return rows() ? static_cast<int64_t>(data.size()) / rows() : 0; }
};

class GoldenModel {
 public:
  explicit GoldenModel(const std::string& name)
      : name_(name),
        dir_(golden_dir() + "/model/" + name),
        cases_file_(std::make_unique<SafetensorsFile>(dir_ + "/cases.safetensors")),
        json_(nlohmann::json::parse(read_file(dir_ + "/cases.json"))) {}

  const std::string& name() const { return name_; }
  const std::string& dir() const { return dir_; }
  const nlohmann::json& json() const { return json_; }
  const nlohmann::json& case_json(const std::string& c) const { return json_.at("cases").at(c); }
  std::vector<int32_t> prompt() const { return json_.at("prompt_ids").get<std::vector<int32_t>>(); }
  double atol(const std::string& c) const { return json_.at("tolerances").at(c).at("recommended_atol").get<double>(); }

  GoldenArray array(const std::string& name) const {
    const auto& t = cases_file_->header().tensors;
    auto it = t.find(name);
    if (it == t.end()) throw std::runtime_error("golden array " + name + " not found in " + dir_);
    GoldenArray a;
    a.shape = it->second.shape;
    a.data.resize(static_cast<size_t>(it->second.numel()));
    to_f32(it->second.dtype, it->second.data, it->second.numel(), a.data.data());
    return a;
  }

 private:
  std::string name_, dir_;
  std::unique_ptr<SafetensorsFile> cases_file_;
  nlohmann::json json_;
};

// Largest |a - b| over n values.
inline double max_abs_diff(const float* a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, static_cast<double>(std::fabs(a[i] - b[i])));
  return m;
}

}  // namespace huginn::test
