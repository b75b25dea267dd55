// The namespaces nearly every test reads.
global using System.Text.Json;
global using Kangaroo.Native.Engine;
global using Kangaroo.Native.Engine.Decoding;
global using Kangaroo.Native.Engine.Kangaroo;
global using Kangaroo.Native.Kernels;
global using Kangaroo.Native.Loader;
global using Kangaroo.Native.Numerics;
global using Kangaroo.Native.Tests.Engine;
global using Kangaroo.Native.Tests.Cli;
