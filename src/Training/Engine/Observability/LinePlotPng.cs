using System.Buffers.Binary;
using System.IO.Compression;

namespace HiggsCluster.Training.Engine.Observability;

/// <summary>
/// A small self-contained PNG line chart (axes, light grid, one coloured polyline per series, a colour key drawn as
/// swatches with a 5×7 bitmap font). Used instead of a plotting library so plots work on any headless machine
/// without native graphics libraries.
/// </summary>
public sealed class LinePlotPng(int width = 800, int height = 480)
{
    public sealed record Series(string Name, IReadOnlyList<(double X, double Y)> Points);

    private static readonly (byte R, byte G, byte B)[] Palette =
    {
        (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
        (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (0, 0, 0),
    };

    public void Write(string path, string title, IReadOnlyList<Series> series)
    {
        var px = new byte[width * height * 3];
        Array.Fill(px, (byte)255);
        const int left = 60, right = 20, top = 30, bottom = 40;
        int pw = width - left - right, ph = height - top - bottom;
        var all = series.SelectMany(s => s.Points).Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).ToList();
        double x0 = all.Count > 0 ? all.Min(p => p.X) : 0, x1 = all.Count > 0 ? all.Max(p => p.X) : 1;
        double y0 = all.Count > 0 ? all.Min(p => p.Y) : 0, y1 = all.Count > 0 ? all.Max(p => p.Y) : 1;
        if (x1 <= x0) x1 = x0 + 1;
        if (y1 <= y0) { y1 = y0 + 0.5; y0 -= 0.5; }
        double pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad;
        int X(double x) => left + (int)Math.Round((x - x0) / (x1 - x0) * (pw - 1));
        int Y(double y) => top + (int)Math.Round((1 - (y - y0) / (y1 - y0)) * (ph - 1));

        for (int g = 0; g <= 5; g++)
        {
            int gy = top + g * (ph - 1) / 5, gx = left + g * (pw - 1) / 5;
            Line(px, left, gy, left + pw - 1, gy, (230, 230, 230));
            Line(px, gx, top, gx, top + ph - 1, (230, 230, 230));
            Text(px, Fmt(y1 - g * (y1 - y0) / 5), 2, gy - 3, (60, 60, 60));
            Text(px, Fmt(x0 + g * (x1 - x0) / 5), gx - 10, top + ph + 6, (60, 60, 60));
        }
        Line(px, left, top, left, top + ph - 1, (0, 0, 0));
        Line(px, left, top + ph - 1, left + pw - 1, top + ph - 1, (0, 0, 0));
        Text(px, title, left, 8, (0, 0, 0));
        int keyX = left + 10, keyY = top + 8;
        for (int i = 0; i < series.Count; i++)
        {
            var c = Palette[i % Palette.Length];
            var pts = series[i].Points.Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).ToList();
            for (int j = 1; j < pts.Count; j++) Line(px, X(pts[j - 1].X), Y(pts[j - 1].Y), X(pts[j].X), Y(pts[j].Y), c);
            if (pts.Count == 1) Rect(px, X(pts[0].X) - 2, Y(pts[0].Y) - 2, 5, 5, c);
            Rect(px, keyX, keyY + i * 12, 10, 8, c);
            Text(px, series[i].Name, keyX + 14, keyY + i * 12, (0, 0, 0));
        }
        WritePng(path, px);
    }

    private static string Fmt(double v) => Math.Abs(v) >= 1000 ? v.ToString("0", System.Globalization.CultureInfo.InvariantCulture)
        : v.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture);

    private void Set(byte[] px, int x, int y, (byte R, byte G, byte B) c)
    {
        if (x < 0 || y < 0 || x >= width || y >= height) return;
        int i = (y * width + x) * 3;
        px[i] = c.R; px[i + 1] = c.G; px[i + 2] = c.B;
    }

    private void Rect(byte[] px, int x, int y, int w, int h, (byte, byte, byte) c)
    {
        for (int j = 0; j < h; j++) for (int i = 0; i < w; i++) Set(px, x + i, y + j, c);
    }

    private void Line(byte[] px, int xa, int ya, int xb, int yb, (byte, byte, byte) c)
    {
        int dx = Math.Abs(xb - xa), sx = xa < xb ? 1 : -1, dy = -Math.Abs(yb - ya), sy = ya < yb ? 1 : -1, err = dx + dy;
        while (true)
        {
            Set(px, xa, ya, c); Set(px, xa, ya + 1, c);
            if (xa == xb && ya == yb) break;
            int e2 = 2 * err;
            if (e2 >= dy) { err += dy; xa += sx; }
            if (e2 <= dx) { err += dx; ya += sy; }
        }
    }

    private void Text(byte[] px, string s, int x, int y, (byte, byte, byte) c)
    {
        foreach (var ch in s)
        {
            var glyph = Font5x7.Glyph(ch);
            for (int row = 0; row < 7; row++)
                for (int col = 0; col < 5; col++)
                    if ((glyph[row] >> (4 - col) & 1) != 0) Set(px, x + col, y + row, c);
            x += 6;
        }
    }

    private void WritePng(string path, byte[] rgb) => PngEncoder.WriteRgb(path, width, height, rgb);
}

internal static class PngCrc
{
    private static readonly uint[] Table = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    public static uint Compute(byte[] a, byte[] b)
    {
        uint c = 0xFFFFFFFFu;
        foreach (var x in a) c = Table[(c ^ x) & 0xFF] ^ (c >> 8);
        foreach (var x in b) c = Table[(c ^ x) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }
}

/// <summary>A 5×7 bitmap font: digits, upper-case letters (lower case drawn upper) and a little punctuation.</summary>
internal static class Font5x7
{
    private static readonly Dictionary<char, byte[]> Glyphs = new()
    {
        ['0'] = new byte[] { 0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E },
        ['1'] = new byte[] { 0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E },
        ['2'] = new byte[] { 0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F },
        ['3'] = new byte[] { 0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E },
        ['4'] = new byte[] { 0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02 },
        ['5'] = new byte[] { 0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E },
        ['6'] = new byte[] { 0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E },
        ['7'] = new byte[] { 0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08 },
        ['8'] = new byte[] { 0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E },
        ['9'] = new byte[] { 0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C },
        ['A'] = new byte[] { 0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11 },
        ['B'] = new byte[] { 0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E },
        ['C'] = new byte[] { 0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E },
        ['D'] = new byte[] { 0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C },
        ['E'] = new byte[] { 0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F },
        ['F'] = new byte[] { 0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10 },
        ['G'] = new byte[] { 0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F },
        ['H'] = new byte[] { 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11 },
        ['I'] = new byte[] { 0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E },
        ['J'] = new byte[] { 0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C },
        ['K'] = new byte[] { 0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11 },
        ['L'] = new byte[] { 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F },
        ['M'] = new byte[] { 0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11 },
        ['N'] = new byte[] { 0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11 },
        ['O'] = new byte[] { 0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E },
        ['P'] = new byte[] { 0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10 },
        ['Q'] = new byte[] { 0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D },
        ['R'] = new byte[] { 0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11 },
        ['S'] = new byte[] { 0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E },
        ['T'] = new byte[] { 0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04 },
        ['U'] = new byte[] { 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E },
        ['V'] = new byte[] { 0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04 },
        ['W'] = new byte[] { 0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A },
        ['X'] = new byte[] { 0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11 },
        ['Y'] = new byte[] { 0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04 },
        ['Z'] = new byte[] { 0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F },
        ['.'] = new byte[] { 0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C },
        ['-'] = new byte[] { 0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00 },
        ['_'] = new byte[] { 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F },
        [':'] = new byte[] { 0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00 },
        ['/'] = new byte[] { 0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00 },
        ['('] = new byte[] { 0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02 },
        [')'] = new byte[] { 0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08 },
        ['='] = new byte[] { 0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00 },
        ['+'] = new byte[] { 0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00 },
        [','] = new byte[] { 0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08 },
        ['%'] = new byte[] { 0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03 },
    };

    private static readonly byte[] Blank = new byte[7];

    public static byte[] Glyph(char c) => Glyphs.TryGetValue(char.ToUpperInvariant(c), out var g) ? g : Blank;
}
