%%% @doc The connection's reconnect policy, as pure functions: jittered
%%% exponential backoff, a refused token, and which failures count as the
%%% same one (logged once). beamdeck_agent_conn applies them.
-module(beamdeck_agent_backoff).

-export([backoff_delay/2, next_backoff/2, auth_refused/1, failure_key/1, duration/1]).

%% @doc The delay before the next dial: `Base' +-20 %, `Rand' uniform in [0, 1).
-spec backoff_delay(Base, Rand) -> pos_integer() when Base :: pos_integer(), Rand :: float().
backoff_delay(Base, Rand) ->
    max(1, round(Base * (0.8 + 0.4 * Rand))).

%% @doc The base after `Base': doubled, capped at `Max'.
-spec next_backoff(Base, Max) -> pos_integer() when Base :: pos_integer(), Max :: pos_integer().
next_backoff(Base, Max) -> min(Base * 2, Max).

%% @doc Did the server refuse the agent token (HTTP 401/403, close 4401/4403)?
-spec auth_refused(Reason) -> boolean() when Reason :: term().
auth_refused({closed, Code, _}) -> Code =:= 4401 orelse Code =:= 4403;
auth_refused({http, Status, _}) -> Status =:= 401 orelse Status =:= 403;
auth_refused(_) -> false.

%% @doc Reasons that differ only in detail count as one (every TLS alert
%% text, for instance, carries a source line).
-spec failure_key(Reason) -> term() when Reason :: term().
failure_key({tls, {tls_alert, {Alert, _}}}) -> {tls, Alert};
failure_key({connect, _} = R) -> R;
failure_key({closed, Code, _}) when Code =:= 1000; Code =:= 1001; Code =:= 1006; Code =:= 4409 ->
    {closed, Code};
failure_key(R) -> R.

%% @doc A delay for a log line: `"250 ms"', `"30 s"'.
-spec duration(Ms) -> io_lib:chars() when Ms :: non_neg_integer().
duration(Ms) when Ms < 1000 -> io_lib:format("~b ms", [Ms]);
duration(Ms) -> io_lib:format("~b s", [round(Ms / 1000)]).
