// `huginn quantize`: write a model's weights in another type as GGUF.
#include <cstdio>
#include <memory>

#include "commands.h"
#include "huginn/quantize.h"

namespace huginn::cli {
namespace {

void setup_quantize(CLI::App& app) {
  struct Args {
    std::string model, type, out;
    int threads = 0;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("quantize", "Write a model in another weight type (q8_0, q4_0, q4_sb, bf16, f16, f32) as GGUF");
  cmd->add_option("-m,--model", a->model, "model directory (or .gguf)")->required();
  cmd->add_option("--type", a->type, "q8_0, q4_0, q4_sb (4-bit super-blocks, the faster 4-bit type), bf16, f16 or f32")->required();
  cmd->add_option("-o,--out", a->out, "output model directory (model.gguf + config and tokenizer files)")->required();
  cmd->add_option("-t,--threads", a->threads, "threads (default: all cores)");
  cmd->callback([a] {
    QuantizeOptions o;
    o.type = parse_weight_type(a->type);
    o.threads = a->threads;
    auto r = quantize_model(a->model, a->out, o);
    std::printf("wrote %s: %.3f GB of weights (source %.3f GB)\n", r.output.c_str(), static_cast<double>(r.bytes_out) / 1e9,
                static_cast<double>(r.bytes_in) / 1e9);
    for (const auto& [name, why] : r.kept) std::printf("  kept %s: %s\n", name.c_str(), why.c_str());
  });
}

HUGINN_COMMAND(setup_quantize);

}  // namespace
}  // namespace huginn::cli
