-- Put model $1 into (true) or out of (false) the nightly evaluation ($2).
UPDATE models SET active = $2 WHERE model_id = $1
