// The namespaces nearly every command reads.
global using System.CommandLine;
global using System.Text.Json;
global using Kangaroo.Native.Engine;
global using Kangaroo.Native.Engine.Decoding;
global using Kangaroo.Native.Engine.Kangaroo;
global using Kangaroo.Native.Loader;
