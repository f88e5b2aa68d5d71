// `huginn chat-template`: render a model directory's chat template for a
// messages file and encode the result with its tokenizer.json.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "cli_util.h"
#include "commands.h"
#include "huginn/chat_template.h"
#include "huginn/error.h"
#include "huginn/tokenizer.h"

namespace huginn::cli {
namespace {

void setup_chat_template(CLI::App& app) {
  struct Args {
    std::string model, messages;
    bool gen = false, no_gen = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "chat-template",
      "Render a model's chat template for a messages file; prints {\"text\", \"ids\"} "
      "(ids = encode(text, add_special_tokens=false))");
  cmd->add_option("-m,--model", a->model, "model directory (tokenizer_config.json, tokenizer.json)")->required();
  cmd->add_option("--messages", a->messages, "JSON file: a list of {\"role\", \"content\"} objects ('-' = stdin)")
      ->required();
  auto* gen = cmd->add_flag("--add-generation-prompt", a->gen, "pass add_generation_prompt=true");
  auto* no_gen = cmd->add_flag("--no-add-generation-prompt", a->no_gen,
                               "pass add_generation_prompt=false (default: the variable is not passed)");
  gen->excludes(no_gen);
  cmd->callback([a] {
    std::string text;
    if (a->messages == "-") {
      text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    } else {
      std::error_code ec;
      if (!std::filesystem::is_regular_file(a->messages, ec)) throw Error(a->messages + ": messages file not found");
      text = read_text_file(a->messages);
    }
    std::vector<ChatMessage> messages = parse_chat_messages(text, a->messages == "-" ? "stdin" : a->messages);
    std::string tok_path = (std::filesystem::path(a->model) / "tokenizer.json").string();
    std::error_code ec;
    if (!std::filesystem::is_regular_file(tok_path, ec)) throw Error(tok_path + ": tokenizer file not found");
    ChatTemplate tmpl = ChatTemplate::from_model_dir(a->model);
    std::optional<bool> agp;
    if (a->gen) agp = true;
    if (a->no_gen) agp = false;
    std::string rendered = tmpl.render(messages, agp);
    Tokenizer tok = Tokenizer::load(tok_path);
    nlohmann::ordered_json out;
    out["text"] = rendered;
    out["ids"] = tok.encode(rendered, false);
    std::string s = out.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    std::printf("%s\n", s.c_str());
  });
}

}  // namespace

HUGINN_COMMAND(setup_chat_template);

}  // namespace huginn::cli
