namespace Kangaroo.Native.Loader;

/// <summary>A model, tokenizer or adapter file is malformed or disagrees with its configuration.
/// The message always names the file and the problem.</summary>
public sealed class ModelFormatException(string message) : Exception(message);
