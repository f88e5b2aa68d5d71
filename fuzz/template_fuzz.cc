// libFuzzer target: arbitrary template text rendered with fixed messages.
// Must never crash, hang or leak: every failure is a huginn::Error. The limits
// below keep each input's work small (output, items, steps, nesting).
//
// Build by hand (from the repository root):
//   clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
//     fuzz/template_fuzz.cc src/chat/jinja_value.cc src/chat/jinja_parse.cc src/chat/jinja_eval.cc \
//     -o template_fuzz
//   ./template_fuzz -max_total_time=60 -timeout=10 -max_len=4096
#include <cstddef>
#include <cstdint>
#include <string>

#include "chat/jinja.h"
#include "huginn/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const nlohmann::ordered_json vars = nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "You are Huginn."},
      {"role": "user", "content": "  Hello <|end_turn|> {{ x }} \u00e9\u0085 "},
      {"role": "assistant", "content": "Hi!", "tool_calls": [{"name": "f", "arguments": {"a": 1, "b": [true, null, 2.5]}}]}
    ],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "bos_token": "<|begin_text|>", "eos_token": "<|end_text|>", "pad_token": "<|pad|>",
    "add_generation_prompt": true
  })");
  huginn::jinja::Limits lim;
  lim.max_output_bytes = 1u << 20;
  lim.max_items = 1u << 16;
  lim.max_steps = 200'000;
  lim.max_depth = 200;
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    huginn::jinja::Template t(text, lim);
    (void)t.render(vars);
  } catch (const huginn::Error&) {
    // expected for invalid templates
  }
  return 0;
}
