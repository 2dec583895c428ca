// Several "hosts" on one machine, for testing attn-train across a real network: Linux network
// namespaces, each with its own address (10.78.K.i/24), its own hostname (a UTS namespace per
// process started there) and its own loopback, joined by veth links to a bridge in a switch
// namespace, so ranks on different hosts talk TCP through the kernel's network stack and cannot
// share memory (Open MPI's shared-memory transport is off: btl tcp,self). mpirun runs on host 0 and
// starts its daemons on the others through an "rsh agent" script that enters a host's namespace
// instead of ssh-ing to it.
//
// How it is made (root, iproute2): `ip netns add <name>-sw`, a bridge there; per host `ip netns add
// <name>-hI`, a veth pair with one end in the host (addressed, up) and one on the bridge; `tc qdisc
// ... tbf` on the host ends limits bandwidth. Deleting the namespaces removes every link in them;
// `remove()` runs in the tests' `defer`, and a new set first removes any namespaces a crashed test
// left with the same prefix.

import Foundation
import TestProcesses

struct NamespaceHosts {
  static let prefix = "attnt"
  let name: String
  let count: Int
  let agent: String
  private let subnet: Int

  /// Whether this machine lets us make network namespaces (root, iproute2, a kernel with them), and
  /// if not, why: the multi-host tests say so and are skipped, never passed silently.
  static let unavailable: String? = {
    guard getuid() == 0 else { return "network namespaces need root" }
    guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") else { return "iproute2 (/usr/sbin/ip) is not installed" }
    let probe = "\(prefix)-probe-\(getpid())"
    guard let made = try? ChildProcess.run("/usr/sbin/ip", ["netns", "add", probe], environment: [:], timeout: 10) else {
      return "cannot run ip"
    }
    defer { _ = try? ChildProcess.run("/usr/sbin/ip", ["netns", "del", probe], environment: [:], timeout: 10) }
    return made.status == 0 ? nil : "this machine does not allow network namespaces: \(made.output)"
  }()

  func host(_ i: Int) -> String { "\(name)-h\(i)" }
  func address(_ i: Int) -> String { "10.78.\(subnet).\(i + 1)" }
  var hostList: String { (0..<count).map { "\(address($0)):4" }.joined(separator: ",") }

  init(_ count: Int, directory: URL) throws {
    self.count = count
    subnet = Int(getpid() % 200) + 20
    name = "\(Self.prefix)\(getpid())"
    agent = directory.appendingPathComponent("netns-rsh").path
    Self.removeLeftovers()
    let sw = "\(name)-sw"
    var commands: [[String]] = [["netns", "add", sw], ["-n", sw, "link", "add", "br0", "type", "bridge"], ["-n", sw, "link", "set", "br0", "up"]]
    for i in 0..<count {
      let (ns, here, there) = (host(i), "v\(i)", "p\(i)")
      commands += [
        ["netns", "add", ns],
        ["link", "add", "\(name)v\(i)", "type", "veth", "peer", "name", "\(name)p\(i)"],
        ["link", "set", "\(name)v\(i)", "netns", ns], ["link", "set", "\(name)p\(i)", "netns", sw],
        ["-n", ns, "link", "set", "\(name)v\(i)", "name", here], ["-n", sw, "link", "set", "\(name)p\(i)", "name", there],
        ["-n", sw, "link", "set", there, "master", "br0"], ["-n", sw, "link", "set", there, "up"],
        ["-n", ns, "addr", "add", "\(address(i))/24", "dev", here], ["-n", ns, "link", "set", here, "up"],
        ["-n", ns, "link", "set", "lo", "up"],
      ]
    }
    do {
      for command in commands { try Self.ip(command) }
      // Open MPI calls the agent as `agent [options] HOST COMMAND...`.
      let cases = (0..<count).map { "  \(address($0))) ns=\(host($0)) ;;" }.joined(separator: "\n")
      let script = """
        #!/bin/bash
        while [[ "$1" == -* ]]; do shift; done
        host="$1"; shift
        case "$host" in
        \(cases)
          *) echo "netns-rsh: unknown host $host" >&2; exit 1 ;;
        esac
        exec /usr/sbin/ip netns exec "$ns" unshare --uts /bin/sh -c "hostname $ns; $*"
        """
      try script.write(toFile: agent, atomically: true, encoding: .utf8)
      chmod(agent, 0o755)
    } catch {
      remove()
      throw error
    }
  }

  /// Limits every host's link to `rate` (tc's units: "1gbit", "10gbit"); nil removes the limit.
  func limitBandwidth(_ rate: String?) throws {
    for i in 0..<count {
      _ = try? ChildProcess.run("/usr/sbin/ip", ["netns", "exec", host(i), "tc", "qdisc", "del", "dev", "v\(i)", "root"], environment: [:], timeout: 10)
      if let rate {
        try Self.run(["netns", "exec", host(i), "tc", "qdisc", "add", "dev", "v\(i)", "root", "tbf", "rate", rate, "burst", "1mb", "latency", "100ms"])
      }
    }
  }

  /// `ip` arguments that run mpirun on host 0, ranks spread over the hosts in turn, TCP only, not
  /// bound to cores (each "host" would bind its rank to its core 0, all of them this machine's);
  /// `exported` environment variables reach every rank.
  func mpirunArguments(ranks: Int, _ arguments: [String], exported: [String] = ["ATTN_TRAIN_THREADS"]) -> [String] {
    ["netns", "exec", host(0), "unshare", "--uts", "/bin/sh", "-c",
     "hostname \(host(0)); exec \(([Harness.mpirunPath, "--allow-run-as-root", "--oversubscribe", "--mca", "plm_rsh_agent", agent, "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "10.78.\(subnet).0/24", "--mca", "oob_tcp_if_include", "10.78.\(subnet).0/24", "--map-by", "node", "--bind-to", "none", "--host", hostList, "-np", "\(ranks)"] + exported.flatMap { ["-x", $0] } + [Harness.binary] + arguments).map { "'\($0)'" }.joined(separator: " "))"]
  }

  func remove() {
    for ns in (0..<count).map(host) + ["\(name)-sw"] {
      _ = try? ChildProcess.run("/usr/sbin/ip", ["netns", "del", ns], environment: [:], timeout: 10)
    }
  }

  static func removeLeftovers() {
    guard let list = try? ChildProcess.run("/usr/sbin/ip", ["netns", "list"], environment: [:], timeout: 10) else { return }
    for line in list.stdout.split(separator: "\n") {
      let ns = String(line.split(separator: " ").first ?? "")
      // Ours, and its creator is gone.
      guard ns.hasPrefix(prefix), let pid = Int32(ns.dropFirst(prefix.count).prefix { $0.isNumber }), kill(pid, 0) != 0 else { continue }
      _ = try? ChildProcess.run("/usr/sbin/ip", ["netns", "del", ns], environment: [:], timeout: 10)
    }
  }

  private static func ip(_ arguments: [String]) throws { try run(arguments) }

  private static func run(_ arguments: [String]) throws {
    let result = try ChildProcess.run("/usr/sbin/ip", arguments, environment: [:], timeout: 20)
    guard result.status == 0 else {
      throw NSError(domain: "NamespaceHosts", code: Int(result.status), userInfo: [NSLocalizedDescriptionKey: "ip \(arguments.joined(separator: " ")): \(result.output)"])
    }
  }
}
