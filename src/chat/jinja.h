// A Jinja subset interpreter for Hugging Face chat templates.
//
// Behaves like Python jinja2 configured as transformers does
// (ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True),
// loopcontrols, default Undefined, tojson = json.dumps(ensure_ascii=False)).
// See docs/CHAT_TEMPLATES.md for the supported subset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace huginn::jinja {

// Resource bounds, so that no template can hang or exhaust memory. Exceeding
// any of them throws huginn::Error naming the limit.
struct Limits {
  std::size_t max_output_bytes = 64u << 20;  // any single string, and the total rendered
  std::size_t max_items = 1u << 20;          // any single list / range()
  std::uint64_t max_steps = 50'000'000;      // evaluation steps (loop iterations, nodes, bytes/64)
  int max_depth = 200;                       // nesting of expressions/blocks/macro calls
};

struct Program;  // parsed template (opaque)

class Template {
 public:
  // Parses `source`; throws huginn::Error with line/column on syntax errors,
  // unknown tags, unknown filters and unknown tests.
  explicit Template(std::string_view source, Limits limits = {});
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;
  Template(const Template&) = delete;
  Template& operator=(const Template&) = delete;

  // Renders with the given top-level variables (a JSON object). Throws
  // huginn::Error on runtime errors (raise_exception, undefined operations...).
  std::string render(const nlohmann::ordered_json& variables) const;

 private:
  std::unique_ptr<Program> prog_;
  Limits limits_;
};

// Python str.strip() whitespace (str.isspace()).
bool is_py_space(char32_t c);

}  // namespace huginn::jinja
