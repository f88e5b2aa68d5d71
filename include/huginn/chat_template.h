// Chat templates: renders a Hugging Face `chat_template` (a Jinja template in
// tokenizer_config.json) the way transformers' apply_chat_template does
// (Python jinja2, trim_blocks + lstrip_blocks). See docs/CHAT_TEMPLATES.md for
// the supported Jinja subset.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace huginn {

namespace jinja {
class Template;
}

struct ChatMessage {
  std::string role, content;
};

// Huginn-0125's chat template (the tokenizer_config.json form without the
// `else` branch); used when a model directory has no template.
extern const char* const kHuginnChatTemplate;

class ChatTemplate {
 public:
  // Reads DIR/tokenizer_config.json (`chat_template` as a string or as a list
  // of {"name", "template"}, of which "default" is used; a
  // DIR/chat_template.jinja file takes precedence) and the bos/eos/pad tokens
  // (string or {"content": ...} form; DIR/special_tokens_map.json fills in
  // missing ones). Without any template, falls back to Huginn's template with
  // Huginn's tokens (<|begin_text|>, <|end_text|>, <|pad|>).
  static ChatTemplate from_model_dir(const std::string& dir);
  // Parses `template_text` now; throws huginn::Error on syntax errors.
  static ChatTemplate from_string(std::string template_text, std::string bos, std::string eos,
                                  std::string pad = "");

  // add_generation_prompt: std::nullopt = the variable is not passed at all.
  std::string render(const std::vector<ChatMessage>& messages, std::optional<bool> add_generation_prompt) const;
  // General form: a JSON object of variables (messages, tools, ...). bos_token,
  // eos_token and pad_token are added unless present. Key order is kept
  // (matters for tojson).
  std::string render_json(const nlohmann::ordered_json& variables) const;
  std::string render_json(const nlohmann::json& variables) const;

  const std::string& source() const { return source_; }
  const std::string& bos_token() const { return bos_; }
  const std::string& eos_token() const { return eos_; }
  const std::string& pad_token() const { return pad_; }
  // True when from_model_dir found no template and used Huginn's.
  bool is_fallback() const { return fallback_; }

 private:
  std::shared_ptr<const jinja::Template> tmpl_;
  std::string source_, bos_, eos_, pad_;
  bool fallback_ = false;
};

// Parses a messages file body: a JSON list of {"role": str, "content": str}
// objects. Throws huginn::Error naming `what` (e.g. the file name) and the
// offending element.
std::vector<ChatMessage> parse_chat_messages(const std::string& json_text, const std::string& what);

}  // namespace huginn
