// `huginn info` and `huginn forward`: inspect a checkpoint and run one
// forward pass, writing logits and latents to a safetensors file.
#include <cstdio>
#include <memory>
#include <string>

#include "cli_util.h"
#include "commands.h"
#include "huginn/engine.h"
#include "huginn/error.h"
#include "huginn/model.h"
#include "io/safetensors.h"

namespace huginn::cli {
namespace {

std::string with_commas(int64_t v) {
  std::string s = std::to_string(v), out;
  int n = 0;
  for (auto it = s.rbegin(); it != s.rend(); ++it) {
    if (n && n % 3 == 0 && *it != '-') out.insert(out.begin(), ',');
    out.insert(out.begin(), *it);
    ++n;
  }
  return out;
}

void setup_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Print a model's configuration, dtype mix and parameter counts");
  auto model = std::make_shared<std::string>();
  cmd->add_option("-m,--model", *model, "model directory")->required();
  cmd->callback([model] {
    auto m = Model::load(*model);
    const auto& c = m->config();
    std::printf("model: %s\nconfig:\n%s\n", model->c_str(), c.to_json().c_str());
    std::printf("dtype mix (parameters per stored dtype):\n");
    for (const auto& [dt, n] : m->dtype_mix()) std::printf("  %-44s %15s\n", dt.c_str(), with_commas(n).c_str());
    auto p = m->param_counts();
    std::printf("parameters:\n");
    std::printf("  %-20s %15s\n", "embedding (wte)", with_commas(p.embedding).c_str());
    if (p.lm_head) std::printf("  %-20s %15s\n", "lm_head (untied)", with_commas(p.lm_head).c_str());
    std::printf("  %-20s %15s  (%lld blocks)\n", "prelude", with_commas(p.prelude).c_str(), static_cast<long long>(c.n_layers_in_prelude));
    std::printf("  %-20s %15s  (%lld blocks, applied r times)\n", "core block", with_commas(p.core).c_str(),
                static_cast<long long>(c.n_layers_in_recurrent_block));
    std::printf("  %-20s %15s\n", "adapter", with_commas(p.adapter).c_str());
    std::printf("  %-20s %15s  (%lld blocks)\n", "coda", with_commas(p.coda).c_str(), static_cast<long long>(c.n_layers_in_coda));
    std::printf("  %-20s %15s\n", "final norm", with_commas(p.final_norm).c_str());
    std::printf("  %-20s %15s\n", "total", with_commas(p.total()).c_str());
    std::printf("weight bytes: %s; read per token at r=%lld: %s\n", with_commas(m->weight_bytes()).c_str(),
                static_cast<long long>(c.mean_recurrence), with_commas(m->weight_bytes_per_token(c.mean_recurrence)).c_str());
  });
}

void setup_forward(CLI::App& app) {
  struct Args {
    std::string model, ids, out;
    int64_t steps = 0;
    float init_scale = 0.0f;
    uint64_t seed = 0;
    int threads = 0;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("forward", "Run one forward pass and write logits [S,V] and latents [S,E] (float32 safetensors)");
  cmd->add_option("-m,--model", a->model, "model directory")->required();
  cmd->add_option("--ids", a->ids, "comma-separated token ids")->required();
  cmd->add_option("--steps", a->steps, "recurrent steps r (default: the model's mean_recurrence)");
  cmd->add_option("--init-scale", a->init_scale, "scale of the random initial state (0: zeros)")->capture_default_str();
  cmd->add_option("--seed", a->seed, "seed of the initial-state draw")->capture_default_str();
  cmd->add_option("-t,--threads", a->threads, "threads (default: all cores)");
  cmd->add_option("--out", a->out, "output .safetensors file")->required();
  cmd->callback([a, cmd] {
    if (a->steps < 0 || (cmd->count("--steps") && a->steps == 0)) throw Error("--steps must be positive");
    if (a->init_scale < 0) throw Error("--init-scale must be >= 0");
    auto ids = parse_ids(a->ids);
    auto m = Model::load(a->model);
    Engine engine(*m, {a->threads});
    Engine::Options o;
    o.steps = a->steps;
    o.init_scale = a->init_scale;
    o.seed = a->seed;
    o.all_logits = true;
    auto r = engine.forward(ids, nullptr, o);
    const int64_t S = static_cast<int64_t>(ids.size());
    write_safetensors(a->out, {
                                  {"latents", DType::F32, {S, m->config().n_embd}, r.latents.data(), r.latents.size() * 4},
                                  {"logits", DType::F32, {S, m->config().vocab_size}, r.logits.data(), r.logits.size() * 4},
                              });
  });
}

HUGINN_COMMAND(setup_info);
HUGINN_COMMAND(setup_forward);

}  // namespace
}  // namespace huginn::cli
