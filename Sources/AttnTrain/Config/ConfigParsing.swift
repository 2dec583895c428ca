// Reading a config file strictly and writing the resolved config back. JSONDecoder would skip
// unknown keys and fill in defaults without a word, so a typo such as "lerning_rate" would train with
// the default; here every key is looked up in the schema (ConfigSchema.swift) and unknown ones are
// errors with a suggestion. A deprecated name is read as the key it became, with a warning.

import AttnFormats
import Foundation

extension Config {
  /// Reads and validates a config file; `warn` hears about deprecated keys.
  /// A config is a few kilobytes; a file far larger is the wrong file, and reading it whole (a 50 MB
  /// string value took 44 s and 950 MB to refuse) would be the first damage.
  static let maximumBytes = 1 << 20

  public static func load(path: String, warn: (String) -> Void = { _ in }) throws -> Config {
    if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber, size.intValue > maximumBytes {
      throw ConfigError(file: path, "the config file is \(size.intValue) bytes; a config is a few kilobytes of JSON, at most \(maximumBytes) bytes")
    }
    guard let data = FileManager.default.contents(atPath: path) else {
      let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read" : "does not exist"
      throw ConfigError(file: path, "the config file \(reason)")
    }
    return try parse(json: data, sourcePath: path, warn: warn)
  }

  /// Parses and validates a config. `sourcePath` names the file in messages, gives relative paths
  /// their base directory and the default run directory its name.
  public static func parse(json: Data, sourcePath: String, warn: (String) -> Void = { _ in }) throws -> Config {
    let file = sourcePath
    let root: JSONValue
    do {
      root = try JSONValue.parse(json)
    } catch let error as JSONSyntaxError {
      throw ConfigError(file: file, "malformed JSON: \(error)")
    }
    guard case .object(let members) = root else {
      let names = ConfigSchema.sections.map(\.name).joined(separator: ", ")
      throw ConfigError(file: file, "the top level must be an object of sections (\(names)); found \(root.kindName)")
    }

    let base = directory(of: sourcePath)
    var config = Config(sourcePath: sourcePath)
    for (name, value) in members {
      guard let section = ConfigSchema.sections.first(where: { $0.name == name }) else {
        throw unknownSection(name, value, file: file)
      }
      guard case .object(let settings) = value else {
        throw ConfigError(
          file: file, field: name, found: value, "expected an object of settings, found \(value.kindName)")
      }
      var given: [String: String] = [:]  // key -> the name it was given as
      for (name, value) in settings {
        guard let (key, deprecated) = section.key(named: name) else {
          throw unknownKey(name, value, in: section, file: file)
        }
        if let earlier = given[key] {
          throw ConfigError(
            file: file, field: "\(section.name).\(name)", found: value,
            "\"\(earlier)\" already sets this key (\"\(name)\" is its deprecated name); keep only \"\(key)\"")
        }
        given[key] = name
        if deprecated {
          warn("\(file): \(section.name).\(name) is deprecated and read as \(section.name).\(key); rename it")
        }
        try decode(section, key, value, into: &config, base: base)
      }
    }
    // An explicit "" is refused as empty above, so empty here means the key was never given.
    guard !config.data.trainPaths.isEmpty else {
      throw ConfigError(
        file: file, field: "data.train_path",
        "missing; every config names its training text, e.g. \"data\": {\"train_path\": \"../data/input.txt\"} "
          + "(a relative path is taken from the config's directory)")
    }
    try config.validate()
    return config
  }

  /// Every field, defaults included, with absolute paths: 2-space indent, keys sorted, no trailing
  /// newline. Parsing it back (with the same sourcePath) gives an equal Config.
  public func resolvedJSON() -> String {
    JSONValue.object(ConfigSchema.sections.map { (key: $0.name, value: .object($0.encode(self))) }).prettyPrinted()
  }

  /// Reads one key into `config`, turning a refused value into an error that names file and field.
  static func decode(_ section: AnyConfigSection, _ key: String, _ value: JSONValue, into config: inout Config, base: URL)
    throws
  {
    do {
      try section.decode(&config, key, value, base)
    } catch let problem as FieldProblem {
      throw ConfigError(file: config.sourcePath, field: "\(section.name).\(key)", found: value, problem.message)
    }
  }

  /// The directory relative paths are taken from: the config file's, or the working directory for a
  /// config that has no file.
  static func directory(of sourcePath: String) -> URL {
    let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath, isDirectory: true)
    guard !sourcePath.isEmpty else { return cwd }
    return URL(fileURLWithPath: sourcePath, relativeTo: cwd).standardizedFileURL.deletingLastPathComponent()
  }
}
