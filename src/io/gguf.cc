#include "io/gguf.h"

#include <algorithm>
#include <cstring>
#include <fstream>

#include "huginn/error.h"

namespace huginn {

namespace {

enum : uint32_t {
  kU8 = 0, kI8, kU16, kI16, kU32, kI32, kF32, kBool, kString, kArray, kU64, kI64, kF64,
};

constexpr uint32_t kGgmlF32 = 0, kGgmlF16 = 1, kGgmlQ4_0 = 2, kGgmlQ8_0 = 8, kGgmlBF16 = 30;
// Q4_SB is huginn's own block format; its id sits far above ggml's (< 64).
constexpr uint32_t kHuginnQ4_SB = 1024;

class Cursor {
 public:
  Cursor(std::span<const std::byte> b, const std::string& src) : b_(b), src_(src) {}
  size_t pos() const { return pos_; }
  void need(uint64_t n, const char* what) {
    if (n > b_.size() - pos_)
      throw Error(src_ + ": truncated while reading " + what + " at byte " + std::to_string(pos_));
  }
  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str(const char* what) {
    uint64_t n = read<uint64_t>(what);
    if (n > (uint64_t{1} << 30)) throw Error(src_ + ": string length " + std::to_string(n) + " is implausible (" + what + ")");
    need(n, what);
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }

 private:
  std::span<const std::byte> b_;
  const std::string& src_;
  size_t pos_ = 0;
};

int64_t read_int_scalar(Cursor& c, uint32_t type, const std::string& src, const std::string& key) {
  switch (type) {
    case kU8: return c.read<uint8_t>("value");
    case kI8: return c.read<int8_t>("value");
    case kU16: return c.read<uint16_t>("value");
    case kI16: return c.read<int16_t>("value");
    case kU32: return c.read<uint32_t>("value");
    case kI32: return c.read<int32_t>("value");
    case kI64: return c.read<int64_t>("value");
    case kU64: return static_cast<int64_t>(c.read<uint64_t>("value"));
    case kBool: return c.read<uint8_t>("value") != 0;
  }
  throw Error(src + ": metadata '" + key + "' has unsupported value type " + std::to_string(type));
}

GgufValue read_value(Cursor& c, uint32_t type, const std::string& src, const std::string& key) {
  switch (type) {
    case kF32: return static_cast<double>(c.read<float>("value"));
    case kF64: return c.read<double>("value");
    case kBool: return c.read<uint8_t>("value") != 0;
    case kString: return c.str("string value");
    case kU64: return c.read<uint64_t>("value");
    case kArray: {
      uint32_t et = c.read<uint32_t>("array type");
      uint64_t n = c.read<uint64_t>("array length");
      if (n > (uint64_t{1} << 28)) throw Error(src + ": metadata '" + key + "' array is implausibly long");
      if (et == kString) {
        std::vector<std::string> v;
        for (uint64_t i = 0; i < n; ++i) v.push_back(c.str("array string"));
        return v;
      }
      if (et == kArray) throw Error(src + ": metadata '" + key + "' nested arrays are not supported");
      if (et == kF32 || et == kF64) {
        std::vector<double> v;
        for (uint64_t i = 0; i < n; ++i) v.push_back(et == kF32 ? c.read<float>("value") : c.read<double>("value"));
        return v;
      }
      std::vector<int64_t> v;
      for (uint64_t i = 0; i < n; ++i) v.push_back(read_int_scalar(c, et, src, key));
      return v;
    }
    default: return read_int_scalar(c, type, src, key);
  }
}

}  // namespace

std::optional<DType> dtype_from_ggml(uint32_t t) {
  switch (t) {
    case kGgmlF32: return DType::F32;
    case kGgmlF16: return DType::F16;
    case kGgmlBF16: return DType::BF16;
    case kGgmlQ8_0: return DType::Q8_0;
    case kGgmlQ4_0: return DType::Q4_0;
    case kHuginnQ4_SB: return DType::Q4_SB;
  }
  return std::nullopt;
}

uint32_t ggml_type_of(DType t) {
  switch (t) {
    case DType::F32: return kGgmlF32;
    case DType::F16: return kGgmlF16;
    case DType::BF16: return kGgmlBF16;
    case DType::Q8_0: return kGgmlQ8_0;
    case DType::Q4_0: return kGgmlQ4_0;
    case DType::Q4_SB: return kHuginnQ4_SB;
  }
  throw Error("no GGUF type for dtype " + std::string(dtype_name(t)));
}

GgufFile parse_gguf(std::span<const std::byte> bytes, const std::string& src) {
  Cursor c(bytes, src);
  GgufFile g;
  if (bytes.size() < 4 || std::memcmp(bytes.data(), "GGUF", 4) != 0) throw Error(src + ": not a GGUF file (bad magic)");
  c.read<uint32_t>("magic");
  g.version = c.read<uint32_t>("version");
  if (g.version != 3) throw Error(src + ": GGUF version " + std::to_string(g.version) + " is not supported (expected 3)");
  uint64_t n_tensors = c.read<uint64_t>("tensor count");
  uint64_t n_kv = c.read<uint64_t>("metadata count");
  if (n_tensors > (1u << 20) || n_kv > (1u << 20)) throw Error(src + ": implausible tensor or metadata count");
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.str("metadata key");
    uint32_t type = c.read<uint32_t>("metadata type");
    g.metadata[key] = read_value(c, type, src, key);
  }
  struct Info {
    std::string name;
    std::vector<int64_t> shape;
    DType dtype;
    uint64_t offset;
  };
  std::vector<Info> infos;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    Info in;
    in.name = c.str("tensor name");
    uint32_t nd = c.read<uint32_t>("tensor dims");
    if (nd == 0 || nd > 4) throw Error(src + ": tensor '" + in.name + "' has " + std::to_string(nd) + " dimensions");
    std::vector<int64_t> ne;
    int64_t elements = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      uint64_t v = c.read<uint64_t>("tensor dim");
      if (v == 0 || v > (uint64_t{1} << 40)) throw Error(src + ": tensor '" + in.name + "' has an invalid dimension");
      ne.push_back(static_cast<int64_t>(v));
      // Every later size computation multiplies dims in int64: refuse shapes whose
      // element count does not fit (no real tensor comes close).
      if (__builtin_mul_overflow(elements, static_cast<int64_t>(v), &elements))
        throw Error(src + ": tensor '" + in.name + "' is too large");
    }
    in.shape.assign(ne.rbegin(), ne.rend());  // GGUF lists the fastest-varying dim first
    uint32_t t = c.read<uint32_t>("tensor type");
    auto dt = dtype_from_ggml(t);
    if (!dt) throw Error(src + ": tensor '" + in.name + "' has unsupported ggml type " + std::to_string(t));
    in.dtype = *dt;
    in.offset = c.read<uint64_t>("tensor offset");
    infos.push_back(std::move(in));
  }
  uint64_t alignment = 32;
  if (auto it = g.metadata.find("general.alignment"); it != g.metadata.end()) {
    if (auto* u = std::get_if<int64_t>(&it->second)) alignment = static_cast<uint64_t>(*u);
    else if (auto* u64 = std::get_if<uint64_t>(&it->second)) alignment = *u64;
    if (alignment == 0 || alignment > 65536 || (alignment & (alignment - 1)))
      throw Error(src + ": general.alignment must be a power of two");
  }
  const uint64_t data_start = (c.pos() + alignment - 1) / alignment * alignment;
  if (data_start > bytes.size()) throw Error(src + ": truncated before the tensor data");
  const uint64_t data_size = bytes.size() - data_start;
  for (auto& in : infos) {
    TensorView v;
    v.name = in.name;
    v.dtype = in.dtype;
    v.shape = in.shape;
    const int64_t cols = v.shape.back();
    if (cols % dtype_block_size(v.dtype) != 0)
      throw Error(src + ": tensor '" + in.name + "' row length is not a multiple of its block size");
    uint64_t rows = static_cast<uint64_t>(v.numel() / cols);
    uint64_t nbytes = 0;
    if (__builtin_mul_overflow(rows, static_cast<uint64_t>(dtype_row_bytes(v.dtype, cols)), &nbytes))
      throw Error(src + ": tensor '" + in.name + "' is too large");
    if (in.offset % alignment != 0) throw Error(src + ": tensor '" + in.name + "' offset is not aligned");
    if (in.offset > data_size || nbytes > data_size - in.offset)
      throw Error(src + ": tensor '" + in.name + "' data runs past the end of the file");
    v.data = bytes.data() + data_start + in.offset;
    v.nbytes = static_cast<size_t>(nbytes);
    if (!g.tensors.emplace(in.name, std::move(v)).second) throw Error(src + ": duplicate tensor '" + in.name + "'");
  }
  return g;
}

GgufReader::GgufReader(const std::string& path, const MappedFileOptions& opts)
    : file_(std::make_unique<MappedFile>(path, opts)), gguf_(parse_gguf(file_->bytes(), path)) {}

void write_gguf(const std::string& path, const std::map<std::string, GgufValue>& metadata,
                const std::vector<GgufTensorToWrite>& tensors, uint32_t alignment) {
  std::string h;
  auto put = [&](const void* p, size_t n) { h.append(static_cast<const char*>(p), n); };
  auto u32 = [&](uint32_t v) { put(&v, 4); };
  auto u64 = [&](uint64_t v) { put(&v, 8); };
  auto str = [&](const std::string& s) {
    u64(s.size());
    h += s;
  };
  h += "GGUF";
  u32(3);
  u64(tensors.size());
  auto md = metadata;
  md["general.alignment"] = static_cast<int64_t>(alignment);
  u64(md.size());
  for (const auto& [k, v] : md) {
    str(k);
    if (auto* i = std::get_if<int64_t>(&v)) {
      if (k == "general.alignment") {
        u32(kU32);
        u32(static_cast<uint32_t>(*i));
      } else {
        u32(kI64);
        put(i, 8);
      }
    } else if (auto* u = std::get_if<uint64_t>(&v)) {
      u32(kU64);
      put(u, 8);
    } else if (auto* d = std::get_if<double>(&v)) {
      u32(kF64);
      put(d, 8);
    } else if (auto* b = std::get_if<bool>(&v)) {
      u32(kBool);
      uint8_t x = *b;
      put(&x, 1);
    } else if (auto* s = std::get_if<std::string>(&v)) {
      u32(kString);
      str(*s);
    } else if (auto* ai = std::get_if<std::vector<int64_t>>(&v)) {
      u32(kArray);
      u32(kI64);
      u64(ai->size());
      for (auto x : *ai) put(&x, 8);
    } else if (auto* as = std::get_if<std::vector<std::string>>(&v)) {
      u32(kArray);
      u32(kString);
      u64(as->size());
      for (const auto& x : *as) str(x);
    } else if (auto* ad = std::get_if<std::vector<double>>(&v)) {
      u32(kArray);
      u32(kF64);
      u64(ad->size());
      for (auto x : *ad) put(&x, 8);
    }
  }
  uint64_t offset = 0;
  std::vector<uint64_t> offsets;
  for (const auto& t : tensors) {
    str(t.name);
    u32(static_cast<uint32_t>(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) u64(static_cast<uint64_t>(*it));
    u32(ggml_type_of(t.dtype));
    u64(offset);
    offsets.push_back(offset);
    offset = (offset + t.nbytes + alignment - 1) / alignment * alignment;
  }
  while (h.size() % alignment) h.push_back('\0');
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw Error("cannot create " + path);
  f.write(h.data(), static_cast<std::streamsize>(h.size()));
  uint64_t written = 0;
  static const char zeros[64] = {};
  std::vector<std::byte> buf;
  for (size_t i = 0; i < tensors.size(); ++i) {
    while (written < offsets[i]) {
      uint64_t n = std::min<uint64_t>(sizeof zeros, offsets[i] - written);
      f.write(zeros, static_cast<std::streamsize>(n));
      written += n;
    }
    buf.resize(tensors[i].nbytes);
    tensors[i].fill(buf.data());
    f.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
    written += buf.size();
  }
  if (!f) throw Error("error writing " + path);
}

}  // namespace huginn
