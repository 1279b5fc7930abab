-- The first item of the JSON array in file $1, as text (for detecting its record layout).
SELECT json::VARCHAR FROM read_json_objects($1, format = 'array') LIMIT 1
