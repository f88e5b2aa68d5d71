#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "huginn/error.h"

namespace huginn {

using json = nlohmann::json;

namespace {

// Element sizes of the dtypes the format defines; tensors of types the engine
// cannot compute with are still parsed (and rejected later if used).
std::optional<size_t> element_bytes(std::string_view dt) {
  static const std::pair<const char*, size_t> kTypes[] = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
      {"I8", 1},  {"U8", 1},  {"U16", 2}, {"U32", 4},  {"U64", 8}, {"BOOL", 1}, {"F8_E4M3", 1},
      {"F8_E5M2", 1}};
  for (auto& [n, s] : kTypes)
    if (dt == n) return s;
  return std::nullopt;
}

bool mul_overflows(uint64_t a, uint64_t b, uint64_t& out) { return __builtin_mul_overflow(a, b, &out); }

}  // namespace

SafetensorsHeader parse_safetensors(std::span<const std::byte> file, const std::string& src) {
  if (file.size() < 8)
    throw Error(src + ": file is truncated (" + std::to_string(file.size()) + " bytes, need at least 8 for the header length)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | static_cast<uint8_t>(file[static_cast<size_t>(i)]);
  if (n > file.size() - 8)
    throw Error(src + ": header length " + std::to_string(n) + " runs past the end of the file (" +
                std::to_string(file.size()) + " bytes)");
  if (n > (uint64_t{100} << 20)) throw Error(src + ": header length " + std::to_string(n) + " is implausibly large");
  const char* hp = reinterpret_cast<const char*>(file.data() + 8);
  json h;
  try {
    h = json::parse(hp, hp + n);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for numbers like 1e999
    throw Error(src + ": header is not valid JSON: " + e.what());
  }
  if (!h.is_object()) throw Error(src + ": header is not a JSON object");

  const std::byte* data = file.data() + 8 + n;
  const uint64_t data_size = file.size() - 8 - n;
  SafetensorsHeader out;
  struct Range {
    uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Range> ranges;

  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") {
      if (!it->is_object()) throw Error(src + ": __metadata__ must be an object of strings");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) throw Error(src + ": __metadata__ value '" + m.key() + "' is not a string");
        out.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    const std::string where = src + ": tensor '" + name + "'";
    const json& t = *it;
    if (!t.is_object()) throw Error(where + ": entry is not an object");
    if (!t.contains("dtype") || !t["dtype"].is_string()) throw Error(where + ": missing or non-string 'dtype'");
    if (!t.contains("shape") || !t["shape"].is_array()) throw Error(where + ": missing or non-array 'shape'");
    if (!t.contains("data_offsets") || !t["data_offsets"].is_array() || t["data_offsets"].size() != 2)
      throw Error(where + ": 'data_offsets' must be an array [begin, end]");
    std::string dt = t["dtype"].get<std::string>();
    auto esize = element_bytes(dt);
    if (!esize) throw Error(where + ": unknown dtype '" + dt + "'");

    TensorView v;
    v.name = name;
    uint64_t numel = 1;
    for (const auto& d : t["shape"]) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
        throw Error(where + ": shape entries must be non-negative integers");
      uint64_t dim = d.get<uint64_t>();
      if (dim > (uint64_t{1} << 40) || mul_overflows(numel, dim, numel)) throw Error(where + ": shape is too large");
      v.shape.push_back(static_cast<int64_t>(dim));
    }
    const auto& off = t["data_offsets"];
    for (const auto& o : off)
      if (!o.is_number_unsigned() && !(o.is_number_integer() && o.get<int64_t>() >= 0))
        throw Error(where + ": data_offsets must be non-negative integers");
    uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end) throw Error(where + ": data_offsets begin " + std::to_string(begin) + " > end " + std::to_string(end));
    if (end > data_size)
      throw Error(where + ": data_offsets end " + std::to_string(end) + " is past the end of the data section (" +
                  std::to_string(data_size) + " bytes)");
    uint64_t expect = 0;
    if (mul_overflows(numel, *esize, expect)) throw Error(where + ": shape is too large");
    if (end - begin != expect)
      throw Error(where + ": holds " + std::to_string(end - begin) + " bytes but shape " + v.shape_string() + " x " + dt +
                  " needs " + std::to_string(expect));
    if (auto d = dtype_from_name(dt)) v.dtype = *d;
    else v.dtype = DType::F32;  // placeholder for types the engine never computes with
    v.data = data + begin;
    v.nbytes = static_cast<size_t>(end - begin);
    auto [pos, inserted] = out.tensors.emplace(name, std::move(v));
    if (!inserted) throw Error(where + ": duplicate tensor name");
    if (!dtype_from_name(dt)) pos->second.name = name + " (dtype " + dt + ")";
    ranges.push_back({begin, end, &pos->first});
  }
  // Zero-sized tensors occupy no bytes and may sit anywhere; among the others,
  // sorted by begin, each must start at or after the furthest end seen so far
  // (comparing only neighbours misses a range nested in an earlier big one when
  // an empty range sorts between them).
  std::erase_if(ranges, [](const Range& r) { return r.begin == r.end; });
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (size_t i = 1, far = 0; i < ranges.size(); ++i) {
    if (ranges[i].begin < ranges[far].end)
      throw Error(src + ": tensors '" + *ranges[far].name + "' and '" + *ranges[i].name + "' have overlapping data_offsets");
    if (ranges[i].end > ranges[far].end) far = i;
  }
  return out;
}

SafetensorsFile::SafetensorsFile(const std::string& path, const MappedFileOptions& opts)
    : file_(std::make_unique<MappedFile>(path, opts)), header_(parse_safetensors(file_->bytes(), path)) {}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  json h = json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t off = 0;
  for (const auto& t : tensors) {
    uint64_t numel = 1;
    for (auto d : t.shape) numel *= static_cast<uint64_t>(d);
    if (t.dtype == DType::F32 || t.dtype == DType::F16 || t.dtype == DType::BF16) {
      if (numel * (t.dtype == DType::F32 ? 4 : 2) != t.nbytes)
        throw Error("write_safetensors: tensor '" + t.name + "' has " + std::to_string(t.nbytes) + " bytes, shape needs " +
                    std::to_string(numel * (t.dtype == DType::F32 ? 4 : 2)));
    } else {
      throw Error("write_safetensors: dtype " + std::string(dtype_name(t.dtype)) + " cannot be stored in safetensors");
    }
    h[t.name] = {{"dtype", std::string(dtype_name(t.dtype))}, {"shape", t.shape}, {"data_offsets", {off, off + t.nbytes}}};
    off += t.nbytes;
  }
  std::string hs = h.dump();
  while (hs.size() % 8) hs.push_back(' ');  // align the data section to 8 bytes
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw Error("cannot create " + path);
  uint64_t n = hs.size();
  char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>(n >> (8 * i) & 0xff);
  f.write(len, 8);
  f.write(hs.data(), static_cast<std::streamsize>(hs.size()));
  std::vector<std::byte> buf;
  for (const auto& t : tensors) {
    const void* p = t.data;
    if (!p) {
      buf.resize(t.nbytes);
      t.generate(buf.data());
      p = buf.data();
    }
    f.write(static_cast<const char*>(p), static_cast<std::streamsize>(t.nbytes));
  }
  if (!f) throw Error("error writing " + path);
}

}  // namespace huginn
