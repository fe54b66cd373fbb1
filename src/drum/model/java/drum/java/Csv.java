package drum.java;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** RFC 4180 CSV: the rows of a payload (the first is the header) and the CSV text of predictions (CRLF). */
public final class Csv {
    private Csv() {
    }

    public static List<List<String>> parse(byte[] data) {
        String text = new String(data, StandardCharsets.UTF_8);
        if (text.startsWith("\uFEFF")) {
            text = text.substring(1);
        }
        List<List<String>> rows = new ArrayList<>();
        List<String> row = new ArrayList<>();
        StringBuilder cell = new StringBuilder();
        boolean quoted = false;
        boolean any = false;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (quoted) {
                if (c == '"') {
                    if (i + 1 < text.length() && text.charAt(i + 1) == '"') {
                        cell.append('"');
                        i++;
                    } else {
                        quoted = false;
                    }
                } else {
                    cell.append(c);
                }
            } else if (c == '"') {
                quoted = true;
                any = true;
            } else if (c == ',') {
                row.add(cell.toString());
                cell.setLength(0);
                any = true;
            } else if (c == '\n' || c == '\r') {
                if (c == '\r' && i + 1 < text.length() && text.charAt(i + 1) == '\n') {
                    i++;
                }
                if (any || cell.length() > 0) {
                    row.add(cell.toString());
                    rows.add(row);
                }
                row = new ArrayList<>();
                cell.setLength(0);
                any = false;
            } else {
                cell.append(c);
                any = true;
            }
        }
        if (any || cell.length() > 0) {
            row.add(cell.toString());
            rows.add(row);
        }
        return rows;
    }

    /** Every data row as a map from header name to value (empty cells are absent, i.e. missing). */
    public static List<Map<String, String>> records(byte[] data) {
        List<List<String>> rows = parse(data);
        List<Map<String, String>> records = new ArrayList<>();
        if (rows.isEmpty()) {
            return records;
        }
        List<String> header = rows.get(0);
        for (List<String> row : rows.subList(1, rows.size())) {
            Map<String, String> record = new LinkedHashMap<>();
            for (int i = 0; i < header.size() && i < row.size(); i++) {
                if (!row.get(i).isEmpty()) {
                    record.put(header.get(i), row.get(i));
                }
            }
            records.add(record);
        }
        return records;
    }

    private static String quote(String value) {
        if (value.indexOf(',') >= 0 || value.indexOf('"') >= 0 || value.indexOf('\n') >= 0 || value.indexOf('\r') >= 0) {
            return '"' + value.replace("\"", "\"\"") + '"';
        }
        return value;
    }

    public static String write(String[] header, List<double[]> rows) {
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < header.length; i++) {
            out.append(i == 0 ? "" : ",").append(quote(header[i]));
        }
        out.append("\r\n");
        for (double[] row : rows) {
            for (int i = 0; i < row.length; i++) {
                out.append(i == 0 ? "" : ",").append(Double.isNaN(row[i]) ? "" : Double.toString(row[i]));
            }
            out.append("\r\n");
        }
        return out.toString();
    }
}
