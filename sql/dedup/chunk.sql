-- One chunk of the prompts to cluster: ords [$1, $2).
SELECT prompt FROM batch_prompts WHERE ord >= $1 AND ord < $2 ORDER BY ord
