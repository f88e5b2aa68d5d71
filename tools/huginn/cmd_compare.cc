// `huginn compare`: logit drift of one model against a reference (e.g. a
// quantized model against its BF16 source) over the same prompt.
#include <cstdio>
#include <memory>
#include <random>
#include <string>

#include "cli_util.h"
#include "commands.h"
#include "huginn/engine.h"
#include "huginn/error.h"
#include "huginn/model.h"
#include "huginn/quantize.h"

namespace huginn::cli {
namespace {

void setup_compare(CLI::App& app) {
  struct Args {
    std::string ref, other, ids;
    int64_t tokens = 16, steps = 0;
    uint64_t seed = 1;
    int threads = 0;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("compare", "Logit drift of a model against a reference model (max/RMS error, top-1 agreement, KL)");
  cmd->add_option("-m,--model", a->ref, "reference model (e.g. the BF16 source)")->required();
  cmd->add_option("--with", a->other, "model to compare (e.g. its quantized copy)")->required();
  cmd->add_option("--ids", a->ids, "comma-separated prompt token ids (default: random tokens)");
  cmd->add_option("--tokens", a->tokens, "length of the random prompt")->capture_default_str();
  cmd->add_option("--seed", a->seed, "seed of the random prompt")->capture_default_str();
  cmd->add_option("--steps", a->steps, "recurrent steps r (default: the model's mean_recurrence)");
  cmd->add_option("-t,--threads", a->threads, "threads (default: all cores)");
  cmd->add_flag("--json", a->json, "print one JSON object");
  cmd->callback([a, cmd] {
    if (cmd->count("--steps") && a->steps <= 0) throw Error("--steps must be positive");
    if (a->tokens <= 0) throw Error("--tokens must be positive");
    auto ref = Model::load(a->ref);
    auto other = Model::load(a->other);
    const int64_t V = ref->config().vocab_size;
    if (other->config().vocab_size != V || other->config().n_embd != ref->config().n_embd)
      throw Error("compare: models differ in shape (vocab " + std::to_string(V) + " vs " +
                  std::to_string(other->config().vocab_size) + ", n_embd " + std::to_string(ref->config().n_embd) + " vs " +
                  std::to_string(other->config().n_embd) + ")");
    std::vector<int32_t> ids;
    if (!a->ids.empty()) {
      ids = parse_ids(a->ids);
    } else {
      std::mt19937_64 rng(a->seed);
      std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(V - 1));
      for (int64_t i = 0; i < a->tokens; ++i) ids.push_back(tok(rng));
    }
    Engine::Options o;
    o.steps = a->steps;
    o.all_logits = true;
    auto run = [&](const Model& m) {
      Engine e(m, {a->threads});
      return std::move(e.forward(ids, nullptr, o).logits);
    };
    const auto la = run(*ref);
    const auto lb = run(*other);
    const int64_t S = static_cast<int64_t>(ids.size());
    const auto d = logit_drift(la.data(), lb.data(), S, V);
    const long long steps = a->steps ? a->steps : ref->config().mean_recurrence;
    if (a->json) {
      std::printf(
          "{\"positions\":%lld,\"steps\":%lld,\"max_abs_error\":%.6g,\"rms_error\":%.6g,\"max_abs_logit\":%.6g,"
          "\"top1_agree\":%lld,\"mean_kl\":%.6g,\"max_kl\":%.6g}\n",
          static_cast<long long>(S), steps, d.max_abs_error, d.rms_error, d.max_abs_logit, static_cast<long long>(d.top1_agree),
          d.mean_kl, d.max_kl);
      return;
    }
    std::printf("reference: %s (%s)\ncompared:  %s (%s)\n", a->ref.c_str(), main_dtype(*ref).c_str(), a->other.c_str(),
                main_dtype(*other).c_str());
    std::printf("positions %lld, r=%lld\n", static_cast<long long>(S), steps);
    std::printf("max |logit error|   %.4g  (max |logit| %.4g)\n", d.max_abs_error, d.max_abs_logit);
    std::printf("RMS logit error     %.4g\n", d.rms_error);
    std::printf("top-1 agreement     %lld/%lld\n", static_cast<long long>(d.top1_agree), static_cast<long long>(S));
    std::printf("KL(ref||compared)   mean %.4g, max %.4g nats\n", d.mean_kl, d.max_kl);
  });
}

HUGINN_COMMAND(setup_compare);

}  // namespace
}  // namespace huginn::cli
