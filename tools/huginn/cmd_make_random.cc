// `huginn make-random`: write a random-weight checkpoint in the published
// Hugging Face layout (for demos, tests and benchmarks; the text it generates
// is meaningless).
#include <cstdio>
#include <memory>

#include "commands.h"
#include "huginn/chat_template.h"
#include "huginn/error.h"
#include "huginn/random_checkpoint.h"

namespace huginn::cli {
namespace {

void setup_make_random(CLI::App& app) {
  struct Args {
    std::string out, preset = "demo", dtype = "bf16";
    int64_t n_embd = 0, n_heads = 0, intermediate = 0, vocab = 0, steps = 0;
    int shards = 1;
    uint64_t seed = 0;
    bool no_tokenizer = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("make-random", "Write a checkpoint with RANDOM weights in Huginn's Hugging Face layout");
  cmd->add_option("-o,--out", a->out, "output directory")->required();
  cmd->add_option("--preset", a->preset, "shape: demo (small), full (the published 3.5B shape), tiny")->capture_default_str();
  cmd->add_option("--dtype", a->dtype, "bf16, f16 or f32")->capture_default_str();
  cmd->add_option("--n-embd", a->n_embd, "override the embedding size");
  cmd->add_option("--n-heads", a->n_heads, "override the number of heads");
  cmd->add_option("--intermediate-size", a->intermediate, "override the MLP size");
  cmd->add_option("--vocab-size", a->vocab, "override the vocabulary size (a tokenizer needs 65536)");
  cmd->add_option("--mean-recurrence", a->steps, "override the default number of recurrent steps");
  cmd->add_option("--shards", a->shards, "number of safetensors shards")->capture_default_str();
  cmd->add_option("--seed", a->seed, "random seed")->capture_default_str();
  cmd->add_flag("--no-tokenizer", a->no_tokenizer, "do not write tokenizer files");
  cmd->callback([a] {
    RandomCheckpointOptions o;
    o.config = random_checkpoint_preset(a->preset);
    if (a->n_embd) o.config.n_embd = a->n_embd;
    if (a->n_heads) o.config.n_heads = a->n_heads;
    if (a->intermediate) o.config.intermediate_size = a->intermediate;
    if (a->vocab) o.config.vocab_size = a->vocab;
    if (a->steps) o.config.mean_recurrence = a->steps;
    if (a->dtype == "bf16") o.dtype = DType::BF16;
    else if (a->dtype == "f16") o.dtype = DType::F16;
    else if (a->dtype == "f32") o.dtype = DType::F32;
    else throw Error("--dtype: expected bf16, f16 or f32, got '" + a->dtype + "'");
    o.shards = a->shards;
    o.seed = a->seed;
    o.write_tokenizer = !a->no_tokenizer && o.config.vocab_size >= 65536;
    o.chat_template = kHuginnChatTemplate;
    write_random_checkpoint(a->out, o);
    std::printf("wrote a RANDOM-WEIGHT %s checkpoint to %s (E=%lld, heads=%lld, I=%lld, V=%lld)%s\n", a->preset.c_str(),
                a->out.c_str(), static_cast<long long>(o.config.n_embd), static_cast<long long>(o.config.n_heads),
                static_cast<long long>(o.config.intermediate_size), static_cast<long long>(o.config.vocab_size),
                o.write_tokenizer ? " with a byte-level tokenizer" : "");
  });
}

HUGINN_COMMAND(setup_make_random);

}  // namespace
}  // namespace huginn::cli
