-- Write the chosen export layout (the view export_out, sql/export/pairs.sql) as JSON Lines; the path is bound.
COPY (SELECT * FROM export_out ORDER BY id) TO ? (FORMAT json);
