namespace Kangaroo.Native.Loader;

/// <summary>A model, tokenizer or adapter file is malformed or disagrees with its configuration.
/// The message always names the file and the problem, on one line: the file's own text in it is
/// escaped and cut short (<see cref="ErrorText.OneLine"/>), whatever bytes the file holds.</summary>
public sealed class ModelFormatException(string message) : Exception(ErrorText.OneLine(message));
