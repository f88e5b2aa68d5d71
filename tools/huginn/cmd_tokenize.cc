// `huginn tokenize` and `huginn detokenize`: run a model directory's
// tokenizer.json on text or ids.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_util.h"
#include "commands.h"
#include "huginn/error.h"
#include "huginn/tokenizer.h"

namespace huginn::cli {
namespace {

Tokenizer load_from_dir(const std::string& dir) {
  std::string path = (std::filesystem::path(dir) / "tokenizer.json").string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw Error(path + ": tokenizer file not found");
  return Tokenizer::load(path);
}

void setup_tokenize(CLI::App& app) {
  struct Args {
    std::string model, text, file;
    bool add_special = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("tokenize", "Encode text with a model's tokenizer.json; prints {\"ids\", \"tokens\"}");
  cmd->add_option("-m,--model", a->model, "model directory containing tokenizer.json")->required();
  cmd->add_flag("--add-special", a->add_special, "add the post-processor's special tokens (e.g. BOS)");
  auto* text = cmd->add_option("--text", a->text, "text to encode");
  auto* file = cmd->add_option("--file", a->file, "file whose contents (UTF-8) to encode");
  text->excludes(file);
  file->excludes(text);
  cmd->callback([a, text, file] {
    if (text->count() == 0 && file->count() == 0) throw Error("tokenize: give exactly one of --text or --file");
    Tokenizer tok = load_from_dir(a->model);
    std::string input = file->count() ? read_text_file(a->file) : a->text;
    auto ids = tok.encode(input, a->add_special);
    nlohmann::json out;
    out["ids"] = ids;
    auto& tokens = out["tokens"] = nlohmann::json::array();
    for (int32_t id : ids) tokens.push_back(tok.id_to_token(id));
    std::string s = out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::printf("%s\n", s.c_str());
  });
}

void setup_detokenize(CLI::App& app) {
  struct Args {
    std::string model, ids;
    bool skip_special = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("detokenize", "Decode comma-separated token ids with a model's tokenizer.json");
  cmd->add_option("-m,--model", a->model, "model directory containing tokenizer.json")->required();
  cmd->add_option("--ids", a->ids, "token ids, e.g. 1,2,3")->required();
  cmd->add_flag("--skip-special", a->skip_special, "drop special tokens");
  cmd->callback([a] {
    auto ids = parse_ids(a->ids, "--ids");
    Tokenizer tok = load_from_dir(a->model);
    std::string text = tok.decode(ids, a->skip_special);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
  });
}

}  // namespace

HUGINN_COMMAND(setup_tokenize);
HUGINN_COMMAND(setup_detokenize);

}  // namespace huginn::cli
