-- The latest version of every registered set, or of set $1 (NULL: every set).
SELECT * FROM latest_evalsets WHERE $1 IS NULL OR name = $1 ORDER BY name
