%%% @doc Erlang terms as the JSON the server expects (docs/protocol.md).
%%%
%%% Pids as `pid_to_list/1` prints them, atoms as their text, MFAs as
%%% `"mod:fun/arity"`, integers beyond 2^53 as strings, and any other term
%%% as size-capped printed text. Every collector goes through this module so
%%% that the wire format has one definition.
-module(beamdeck_agent_terms).

-export([pid/1, maybe_pid/1, atom/1, maybe_atom/1, mfa/1, maybe_mfa/1, int/1,
         printed/1, printed/2, id_text/1, now_ms/0, monotonic_ms/0,
         initial_call/1, fmt/2, text/2]).

-define(DEFAULT_CAP, 4096).
-define(MAX_SAFE_INT, 9007199254740991).

-type json() :: null | boolean() | number() | binary() | [json()] | #{binary() | atom() => json()}.
-export_type([json/0]).

%% @doc A pid, port or reference as printed text (`"<0.116.0>"`, `"#Port<0.5>"`).
-spec pid(Ident) -> binary() when Ident :: pid() | port() | reference().
pid(P) when is_pid(P) -> list_to_binary(pid_to_list(P));
pid(P) when is_port(P) -> list_to_binary(port_to_list(P));
pid(R) when is_reference(R) -> list_to_binary(ref_to_list(R)).

%% @doc Like pid/1, but `null` for anything that is not a pid, port or reference.
-spec maybe_pid(term()) -> binary() | null.
maybe_pid(P) when is_pid(P); is_port(P); is_reference(P) -> pid(P);
maybe_pid(_) -> null.

%% @doc An atom's text.
-spec atom(atom()) -> binary().
atom(A) when is_atom(A) -> atom_to_binary(A, utf8).

%% @doc An atom's text, or `null` for `undefined`, `[]` and non-atoms.
-spec maybe_atom(term()) -> binary() | null.
maybe_atom(undefined) -> null;
maybe_atom([]) -> null;
maybe_atom(A) when is_atom(A) -> atom(A);
maybe_atom(_) -> null.

%% @doc `{M, F, A}` (A an arity or an argument list) as `"mod:fun/arity"`.
-spec mfa({module(), atom(), arity() | list()}) -> binary().
mfa({M, F, Args}) when is_list(Args) -> mfa({M, F, length(Args)});
mfa({M, F, A}) when is_atom(M), is_atom(F), is_integer(A) ->
    iolist_to_binary([atom(M), $:, atom(F), $/, integer_to_binary(A)]).

%% @doc Like mfa/1, but `null` for anything that is not an MFA.
-spec maybe_mfa(term()) -> binary() | null.
maybe_mfa({M, F, A}) when is_atom(M), is_atom(F), (is_integer(A) orelse is_list(A)) -> mfa({M, F, A});
maybe_mfa(_) -> null.

%% @doc An integer as JSON: a number when JavaScript can hold it exactly, else a string.
-spec int(integer()) -> integer() | binary().
int(N) when is_integer(N), N =< ?MAX_SAFE_INT, N >= -?MAX_SAFE_INT -> N;
int(N) when is_integer(N) -> integer_to_binary(N).

%% @doc Any term as `#{text, truncated}` printed with `~0p`, capped at 4 KiB.
-spec printed(term()) -> #{text := binary(), truncated := boolean()}.
printed(Term) -> printed(Term, ?DEFAULT_CAP).

%% @doc `io_lib:format/2' as a UTF-8 binary: the agent's messages, whys and fixes.
-spec fmt(io:format(), [term()]) -> binary().
fmt(Format, Args) ->
    unicode:characters_to_binary(io_lib:format(Format, Args)).

%% @doc Any term as its printed text only, capped at `Cap' bytes.
-spec text(term(), Cap) -> binary() when Cap :: pos_integer().
text(Term, Cap) -> maps:get(text, printed(Term, Cap)).

%% @doc Any term as `#{text, truncated}`, capped at `Cap` bytes.
%% The `chars_limit` option bounds the work for huge terms, not only the output.
-spec printed(term(), Cap) -> #{text := binary(), truncated := boolean()}
    when Cap :: pos_integer().
printed(Term, Cap) ->
    Text = unicode:characters_to_binary(io_lib:format("~0tp", [Term], [{chars_limit, Cap + 1}])),
    case byte_size(Text) > Cap of
        true -> #{text => truncate_utf8(Text, Cap), truncated => true};
        false -> #{text => Text, truncated => false}
    end.

%% @doc A child id or other small term as one line of text: atoms bare, others `~0p`.
-spec id_text(term()) -> binary().
id_text(A) when is_atom(A) -> atom(A);
id_text(T) -> maps:get(text, printed(T, 512)).

%% @doc Wall-clock milliseconds since the Unix epoch: the one `now' of
%% the wire (`at' fields). Durations and deadlines use monotonic_ms/0.
-spec now_ms() -> integer().
now_ms() -> erlang:system_time(millisecond).

%% @doc Monotonic milliseconds (never goes back; no relation to the wall
%% clock): for timeouts, ages and deadlines inside the agent, never sent.
-spec monotonic_ms() -> integer().
monotonic_ms() -> erlang:monotonic_time(millisecond).

%% @doc A process's initial call as JSON, the way proc_lib reports it (the
%% callback module of a gen_server, not `proc_lib:init_p/5'); `null' when
%% it cannot be read.
-spec initial_call(Pid) -> json() when Pid :: pid().
initial_call(P) ->
    try maybe_mfa(proc_lib:translate_initial_call(P))
    catch _:_ -> null
    end.

%% Cut at Cap bytes without splitting a UTF-8 sequence.
truncate_utf8(Bin, Cap) ->
    <<Head:Cap/binary, _/binary>> = Bin,
    trim_partial(Head).

trim_partial(Bin) ->
    case unicode:characters_to_binary(Bin) of
        B when is_binary(B) -> B;
        {incomplete, Good, _} -> Good;
        {error, Good, _} -> Good
    end.
