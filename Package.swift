// swift-tools-version:6.0
// The module list is the architecture: C system libraries, the one C shim that touches MPI, numerics
// (AttnCore), communication and the data-parallel step (AttnDist), file formats (AttnFormats), the
// trainer in rooms (AttnTrain: Config, Data, Run, Training), and the CLI. No module imports one
// listed after it; AttnCore and AttnFormats import none of ours.
import PackageDescription

// Kernels are compiled for AVX2+FMA: without a CPU target that has FMA, `addingProduct` becomes a
// library call per lane (measured ~5x slower here; see ../shared/PLATFORM.md).
let numericFlags: [SwiftSetting] = [
  .unsafeFlags(["-Ounchecked", "-target-cpu", "haswell", "-enforce-exclusivity=unchecked", "-Xcc", "-fno-math-errno"])
]

// The data-parallel step takes each share's sum of squares on its communication thread.
let cpuFlags: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"])]

let package = Package(
  name: "attn-train",
  platforms: [.macOS(.v13)],
  products: [
    .executable(name: "attn-train", targets: ["attn-train"])
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
  ],
  targets: [
    .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
    .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
    .target(name: "CMPIShim", dependencies: ["CMPI"]),
    .systemLibrary(name: "CPrefetch"),
    // The FMA probe that MFU's peak comes from: AVX-512 and AVX2 code chosen at run time. Optimised
    // in debug builds too, or the tests' binary would measure a peak far below the machine's.
    .target(name: "CPeakProbe", cSettings: [.unsafeFlags(["-O2"])]),
    .target(name: "AttnCore", dependencies: ["CBLAS", "CPrefetch", "CPeakProbe"], swiftSettings: numericFlags),
    .target(name: "AttnDist", dependencies: ["AttnCore", "CMPIShim"], swiftSettings: cpuFlags),
    .target(name: "AttnFormats"),
    .target(name: "AttnTrain", dependencies: ["AttnCore", "AttnDist", "AttnFormats"], swiftSettings: numericFlags),
    .executableTarget(
      name: "attn-train",
      dependencies: ["AttnTrain", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
    // Benchmarks live in dev/: a table of tokens/s per config and thread count.
    .executableTarget(
      name: "attn-bench", dependencies: ["AttnCore", "AttnDist", "AttnFormats", "AttnTrain", "CBLAS"],
      path: "dev/bench/attn-bench"),
    // Counts the test thread's heap allocations by interposing malloc: proves the step allocates nothing.
    .target(name: "CAllocationCounter", path: "Tests/CAllocationCounter"),
    // How tests start other programs: time limits, whole process trees killed, no inherited descriptors.
    .target(name: "CSpawn", path: "Tests/CSpawn"),
    .target(name: "TestProcesses", dependencies: ["CSpawn"], path: "Tests/TestProcesses"),
    .testTarget(
      name: "AttnCoreTests", dependencies: ["AttnCore", "AttnFormats", "CAllocationCounter", "CBLAS"],
      exclude: ["Fixtures"]),
    .testTarget(
      name: "AttnTrainTests",
      dependencies: ["AttnTrain", "AttnCore", "AttnDist", "AttnFormats", "CAllocationCounter", "TestProcesses"],
      exclude: ["Fixtures"]),
    .testTarget(name: "AttnDistTests", dependencies: ["AttnDist", "AttnCore"]),
    .testTarget(name: "AttnFormatsTests", dependencies: ["AttnFormats", "TestProcesses"]),
    // Runs the built attn-train binary as a user would, alone and under real mpirun.
    .testTarget(
      name: "EndToEndTests", dependencies: ["attn-train", "AttnTrain", "AttnDist", "AttnFormats", "TestProcesses"]),
  ]
)
