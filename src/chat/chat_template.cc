// ChatTemplate: loading chat templates from model directories and rendering
// them with the Jinja interpreter (chat/jinja.h).
#include "huginn/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "chat/jinja.h"
#include "huginn/error.h"

namespace huginn {

const char* const kHuginnChatTemplate =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|begin_header|>' + message['role'] + '<|end_header|>\n\n'+ message['content'] | trim + "
    "'<|end_turn|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|begin_header|>Huginn<|end_header|>\n\n' }}{% endif %}";

namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw Error("cannot read " + p.string());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

ojson read_json(const fs::path& p) {
  try {
    return ojson::parse(read_text(p));
  } catch (const ojson::parse_error& e) {
    throw Error(p.string() + ": invalid JSON: " + e.what());
  }
}

// bos_token etc. as a plain string or {"content": ...}; nullopt if absent/null.
std::optional<std::string> token_field(const ojson& cfg, const char* key, const fs::path& file) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto c = it->find("content");
    if (c != it->end() && c->is_string()) return c->get<std::string>();
  }
  throw Error(file.string() + ": '" + key + "' must be a string or an object with a string 'content'");
}

// chat_template as a string or a list of named templates ("default" wins).
std::optional<std::string> template_field(const ojson& cfg, const fs::path& file) {
  auto it = cfg.find("chat_template");
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    std::string names;
    for (const auto& t : *it) {
      if (!t.is_object() || !t.contains("name") || !t.contains("template") || !t["name"].is_string() ||
          !t["template"].is_string())
        throw Error(file.string() + ": 'chat_template' list entries must be {\"name\": str, \"template\": str}");
      if (t["name"] == "default") return t["template"].get<std::string>();
      names += (names.empty() ? "" : ", ") + t["name"].get<std::string>();
    }
    throw Error(file.string() + ": 'chat_template' lists named templates (" + names +
                ") but none is named 'default'");
  }
  throw Error(file.string() + ": 'chat_template' must be a string or a list of named templates");
}

}  // namespace

ChatTemplate ChatTemplate::from_string(std::string template_text, std::string bos, std::string eos,
                                       std::string pad) {
  ChatTemplate t;
  t.tmpl_ = std::make_shared<const jinja::Template>(template_text);
  t.source_ = std::move(template_text);
  t.bos_ = std::move(bos);
  t.eos_ = std::move(eos);
  t.pad_ = std::move(pad);
  return t;
}

ChatTemplate ChatTemplate::from_model_dir(const std::string& dir) {
  fs::path d(dir);
  std::error_code ec;
  if (!fs::is_directory(d, ec)) throw Error("model directory not found: " + dir);
  std::optional<std::string> tmpl, bos, eos, pad;
  fs::path cfg_path = d / "tokenizer_config.json";
  if (fs::exists(cfg_path, ec)) {
    ojson cfg = read_json(cfg_path);
    if (!cfg.is_object()) throw Error(cfg_path.string() + ": expected a JSON object");
    tmpl = template_field(cfg, cfg_path);
    bos = token_field(cfg, "bos_token", cfg_path);
    eos = token_field(cfg, "eos_token", cfg_path);
    pad = token_field(cfg, "pad_token", cfg_path);
  }
  fs::path jinja_path = d / "chat_template.jinja";
  fs::path ct_json = d / "chat_template.json";
  if (fs::exists(jinja_path, ec)) {
    tmpl = read_text(jinja_path);
  } else if (!tmpl && fs::exists(ct_json, ec)) {
    ojson j = read_json(ct_json);
    if (j.is_object()) tmpl = template_field(j, ct_json);
  }
  fs::path map_path = d / "special_tokens_map.json";
  if ((!bos || !eos || !pad) && fs::exists(map_path, ec)) {
    ojson m = read_json(map_path);
    if (m.is_object()) {
      if (!bos) bos = token_field(m, "bos_token", map_path);
      if (!eos) eos = token_field(m, "eos_token", map_path);
      if (!pad) pad = token_field(m, "pad_token", map_path);
    }
  }
  if (!tmpl) {
    ChatTemplate t = from_string(kHuginnChatTemplate, "<|begin_text|>", "<|end_text|>", "<|pad|>");
    t.fallback_ = true;
    return t;
  }
  try {
    return from_string(*tmpl, bos.value_or(""), eos.value_or(""), pad.value_or(""));
  } catch (const Error& e) {
    throw Error(dir + ": " + e.what());
  }
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages,
                                 std::optional<bool> add_generation_prompt) const {
  ojson vars = ojson::object();
  ojson msgs = ojson::array();
  for (const auto& m : messages) {
    ojson o = ojson::object();
    o["role"] = m.role;
    o["content"] = m.content;
    msgs.push_back(std::move(o));
  }
  vars["messages"] = std::move(msgs);
  if (add_generation_prompt) vars["add_generation_prompt"] = *add_generation_prompt;
  return render_json(vars);
}

std::string ChatTemplate::render_json(const ojson& variables) const {
  if (!variables.is_object()) throw Error("chat template variables must be a JSON object");
  ojson vars = variables;
  if (!vars.contains("bos_token")) vars["bos_token"] = bos_;
  if (!vars.contains("eos_token")) vars["eos_token"] = eos_;
  if (!vars.contains("pad_token") && !pad_.empty()) vars["pad_token"] = pad_;
  return tmpl_->render(vars);
}

std::string ChatTemplate::render_json(const nlohmann::json& variables) const {
  return render_json(ojson::parse(variables.dump()));
}

std::vector<ChatMessage> parse_chat_messages(const std::string& json_text, const std::string& what) {
  ojson j;
  try {
    j = ojson::parse(json_text);
  } catch (const ojson::parse_error& e) {
    throw Error(what + ": invalid JSON: " + e.what());
  }
  if (!j.is_array()) throw Error(what + ": messages must be a JSON list of {\"role\", \"content\"} objects");
  std::vector<ChatMessage> out;
  for (std::size_t i = 0; i < j.size(); ++i) {
    const auto& m = j[i];
    std::string where = what + ": message " + std::to_string(i);
    if (!m.is_object()) throw Error(where + " is not an object");
    for (const char* key : {"role", "content"}) {
      auto it = m.find(key);
      if (it == m.end()) throw Error(where + " has no '" + key + "'");
      if (!it->is_string()) throw Error(where + ": '" + key + "' must be a string");
    }
    out.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return out;
}

}  // namespace huginn
