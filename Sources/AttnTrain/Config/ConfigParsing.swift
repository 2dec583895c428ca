// Reading a config file strictly and writing the resolved config back. JSONDecoder would skip
// unknown keys and fill in defaults without a word, so a typo such as "lerning_rate" would train with
// the default; here every key is looked up in the table (ConfigSchema.swift) and unknown ones are
// errors with a suggestion.
import AttnFormats
import Foundation

extension Config {
  /// Reads and validates a config file; `warn` hears about deprecated keys.
  public static func load(path: String, warn: (String) -> Void = { _ in }) throws -> Config {
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
      let names = sections.map(\.name).joined(separator: ", ")
      throw ConfigError(file: file, "the top level must be an object of sections (\(names)); found \(root.kindName)")
    }

    let base = directory(of: sourcePath)
    let runName =
      sourcePath.isEmpty ? "run" : URL(fileURLWithPath: sourcePath).deletingPathExtension().lastPathComponent
    var config = Config(
      data: DataConfig(trainPath: ""),
      output: OutputConfig(runDir: resolvePath("runs/\(runName)", against: base)),
      sourcePath: sourcePath)
    for (name, value) in members {
      guard let section = sections.first(where: { $0.name == name }) else {
        throw unknownSection(name, value, file: file)
      }
      guard case .object(let settings) = value else {
        throw ConfigError(
          file: file, field: name, found: value, "expected an object of settings, found \(value.kindName)")
      }
      for (key, value) in settings {
        guard section.keys.contains(key) else { throw unknownKey(key, value, in: section, file: file) }
        try decode(section, key, value, into: &config, base: base)
      }
    }
    // An explicit "" is refused as empty above, so empty here means the key was never given.
    guard !config.data.trainPath.isEmpty else {
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
    JSONValue.object(Self.sections.map { (key: $0.name, value: .object($0.encode(self))) }).prettyPrinted()
  }

  /// Reads one key into `config`, turning a refused value into an error that names file and field.
  static func decode(_ section: ConfigSection, _ key: String, _ value: JSONValue, into config: inout Config, base: URL)
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
