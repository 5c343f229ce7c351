%%% @doc The local call graph of a module, read from its `Code' chunk
%%% (decoded by beamdeck_agent_beam): needs neither `debug_info' nor the
%%% `compiler' application.
%%%
%%% Each instruction is an opcode byte followed by the number of operands
%%% beamdeck_agent_beam_ops gives, in the compact term encoding. Only a few
%%% instructions matter: `func_info' starts a function (the label after it
%%% is its entry), `call'/`call_last'/`call_only' go to a local label,
%%% `call_ext*' to an import (a `?MODULE:f()' call is one: it enters the
%%% newest version), `loop_rec'/`wait'/`wait_timeout' are a receive, and
%%% `line' says where in the source the next call is.
%%%
%%% The compiler lifts comprehensions into functions of their own
%%% (`-f/1-lc$^0/1-0-') that recurse over the list; debug_info shows them
%%% as part of `f/1'. They are folded into the function they came from,
%%% so both sources give the same loops. Fun bodies (`-f/1-fun-0-') stay
%%% functions of their own: a named fun that calls itself is a loop a
%%% process can be stuck in.
-module(beamdeck_agent_beam_code).

-export([graph/1]).

-type fa() :: {atom(), arity()}.
-type info() :: #{calls := [{fa(), pos_integer() | null}], ext := [mfa()],
                  recv := boolean(), line := pos_integer() | null, nontail := [fa()]}.
-export_type([info/0]).

-define(FORMAT, 0).

-define(OP_LABEL, 1).
-define(OP_FUNC_INFO, 2).
-define(OP_INT_CODE_END, 3).
-define(OP_CALL, 4).
-define(OP_CALL_LAST, 5).
-define(OP_CALL_ONLY, 6).
-define(OP_CALL_EXT, 7).
-define(OP_CALL_EXT_LAST, 8).
-define(OP_LOOP_REC, 23).
-define(OP_WAIT, 25).
-define(OP_WAIT_TIMEOUT, 26).
-define(OP_CALL_EXT_ONLY, 78).
-define(OP_LINE, 153).

%% Per function while decoding: local calls as {Label, Line}, reversed.
-record(fn, {calls = [] :: [{non_neg_integer(), pos_integer() | null}],
             nontail = [] :: [non_neg_integer() | mfa()],
             ext = [] :: [mfa()], recv = false :: boolean(),
             line = null :: pos_integer() | null}).
-record(st, {cur = none :: fa() | none, entry_next = false :: boolean(),
             fn = #fn{} :: #fn{}, done = [] :: [{fa(), #fn{}}],
             labels = #{} :: #{non_neg_integer() => fa()},
             line = null :: pos_integer() | null,
             atoms :: tuple(), imports :: tuple(), lines :: tuple()}).

%% @doc The functions of the module in `Beam' with their local calls (and
%% the line of each), external calls, whether they receive, and their
%% line; and the exported functions. `{error, {unknown_opcode, N}}' when
%% the code uses an instruction this decoder does not know (a newer OTP).
-spec graph(Beam) -> {ok, module(), #{fa() => info()}, [fa()]}
                     | {error, {unknown_opcode, pos_integer()} | binary()}
    when Beam :: binary().
graph(Beam) ->
    case beamdeck_agent_beam:read(Beam) of
        {ok, #{module := M, code := Code, exports := Exps} = C} ->
            try decode(Code, C) of
                Funs -> {ok, M, Funs, [{F, A} || {F, A, _} <- Exps]}
            catch
                throw:{unknown_opcode, _} = Unknown -> {error, Unknown};
                throw:{format, N} ->
                    {error, beamdeck_agent_terms:fmt("~ts: unknown instruction set ~b", [M, N])};
                error:Reason ->
                    {error, beamdeck_agent_terms:fmt("~ts: malformed Code chunk (~0tp)", [M, Reason])}
            end;
        {error, _} = E -> E
    end.

decode(<<HeaderSize:32, Header:HeaderSize/binary, Code/binary>>, C) ->
    <<Format:32, _MaxOp:32, _/binary>> = Header,
    Format =:= ?FORMAT orelse throw({format, Format}),
    #{atoms := Atoms, imports := Imports, lines := Lines} = C,
    St = instrs(Code, #st{atoms = Atoms, imports = Imports, lines = Lines}),
    #st{done = Done, labels = Labels} = finish(St),
    M = maps:get(module, C),
    fold_comprehensions(maps:from_list([{FA, info(Fn, Labels, M)} || {FA, Fn} <- Done])).

instrs(<<>>, St) -> St;
instrs(<<?OP_INT_CODE_END, _/binary>>, St) -> St;
instrs(<<Op, Rest/binary>>, St) ->
    case beamdeck_agent_beam_ops:arity(Op) of
        unknown -> throw({unknown_opcode, Op});
        N ->
            case relevant(Op) of
                true ->
                    {Args, Rest1} = operands(N, Rest, []),
                    instrs(Rest1, step(Op, Args, St));
                false ->
                    %% Most instructions only need stepping over: no terms built.
                    instrs(skip_operands(N, Rest), St)
            end
    end.

relevant(Op) ->
    Op =:= ?OP_LABEL orelse Op =:= ?OP_FUNC_INFO orelse Op =:= ?OP_LINE
        orelse Op =:= ?OP_CALL orelse Op =:= ?OP_CALL_LAST orelse Op =:= ?OP_CALL_ONLY
        orelse Op =:= ?OP_CALL_EXT orelse Op =:= ?OP_CALL_EXT_LAST orelse Op =:= ?OP_CALL_EXT_ONLY
        orelse Op =:= ?OP_LOOP_REC orelse Op =:= ?OP_WAIT orelse Op =:= ?OP_WAIT_TIMEOUT.

skip_operands(0, Bin) -> Bin;
skip_operands(N, Bin) ->
    case beamdeck_agent_beam:compact(Bin) of
        {{z, 1}, Rest} ->
            {{u, Len}, Rest1} = beamdeck_agent_beam:compact(Rest),
            skip_operands(N - 1, skip_operands(Len, Rest1));
        {{z, _}, _} ->
            {_, Rest} = operand(Bin),
            skip_operands(N - 1, Rest);
        {_, Rest} ->
            skip_operands(N - 1, Rest)
    end.

operands(0, Bin, Acc) -> {lists:reverse(Acc), Bin};
operands(N, Bin, Acc) ->
    {Arg, Rest} = operand(Bin),
    operands(N - 1, Rest, [Arg | Acc]).

%% Extended operands: 0 float, 1 list, 2 float register, 3 allocation
%% list, 4 literal, 5 register with a type.
operand(Bin) ->
    case beamdeck_agent_beam:compact(Bin) of
        {{z, 0}, <<_:64, Rest/binary>>} -> {float, Rest};
        {{z, 1}, Rest} ->
            {{u, Len}, Rest1} = beamdeck_agent_beam:compact(Rest),
            {Items, Rest2} = operands(Len, Rest1, []),
            {{list, Items}, Rest2};
        {{z, 2}, Rest} -> skip(1, Rest, fr);
        {{z, 3}, Rest} ->
            {{u, Len}, Rest1} = beamdeck_agent_beam:compact(Rest),
            skip(2 * Len, Rest1, alloc);
        {{z, 4}, Rest} -> skip(1, Rest, literal);
        {{z, 5}, Rest} ->
            {Reg, Rest1} = beamdeck_agent_beam:compact(Rest),
            {_Type, Rest2} = beamdeck_agent_beam:compact(Rest1),
            {Reg, Rest2};
        {{z, Ext}, _} -> error({extended_operand, Ext});
        {Simple, Rest} -> {Simple, Rest}
    end.

skip(0, Bin, What) -> {What, Bin};
skip(N, Bin, What) ->
    {_, Rest} = beamdeck_agent_beam:compact(Bin),
    skip(N - 1, Rest, What).

step(?OP_LABEL, [{u, L}], #st{entry_next = true, cur = FA, labels = Ls} = St) ->
    St#st{entry_next = false, labels = Ls#{L => FA}};
step(?OP_FUNC_INFO, [_M, {a, F}, {u, A}], #st{atoms = Atoms, line = Line} = St) ->
    St1 = finish(St),
    St1#st{cur = {element(F, Atoms), A}, entry_next = true, fn = #fn{line = Line}};
step(?OP_LINE, [{u, I}], #st{lines = Lines} = St) ->
    Line = if I >= 1, I =< tuple_size(Lines) -> element(I, Lines);
              true -> null
           end,
    St#st{line = Line};
step(?OP_CALL, [_Arity, {f, L}], #st{fn = Fn, line = Line} = St) ->
    St#st{fn = Fn#fn{calls = [{L, Line} | Fn#fn.calls], nontail = [L | Fn#fn.nontail]}};
step(Op, [_Arity, {f, L} | _], #st{fn = Fn, line = Line} = St)
  when Op =:= ?OP_CALL_LAST; Op =:= ?OP_CALL_ONLY ->
    St#st{fn = Fn#fn{calls = [{L, Line} | Fn#fn.calls]}};
step(?OP_CALL_EXT, [_Arity, {u, I}], #st{fn = Fn, imports = Imports} = St) ->
    MFA = element(I + 1, Imports),
    St#st{fn = Fn#fn{ext = [MFA | Fn#fn.ext], nontail = [MFA | Fn#fn.nontail]}};
step(Op, [_Arity, {u, I} | _], #st{fn = Fn, imports = Imports} = St)
  when Op =:= ?OP_CALL_EXT_LAST; Op =:= ?OP_CALL_EXT_ONLY ->
    St#st{fn = Fn#fn{ext = [element(I + 1, Imports) | Fn#fn.ext]}};
step(Op, _, #st{fn = Fn} = St)
  when Op =:= ?OP_LOOP_REC; Op =:= ?OP_WAIT; Op =:= ?OP_WAIT_TIMEOUT ->
    St#st{fn = Fn#fn{recv = true}};
step(_, _, St) -> St.

finish(#st{cur = none} = St) -> St;
finish(#st{cur = FA, fn = Fn, done = Done} = St) ->
    St#st{cur = none, fn = #fn{}, done = [{FA, Fn} | Done]}.

%% `nontail': the local functions it calls and waits for (a `call', or a
%% `call_ext' to its own module), whose return lands in this version.
info(#fn{calls = Calls, ext = Ext, recv = Recv, line = Line, nontail = NonTail}, Labels, M) ->
    #{calls => [{FA, L} || {Label, L} <- lists:reverse(Calls),
                           {ok, FA} <- [maps:find(Label, Labels)]],
      ext => unique(lists:reverse(Ext)), recv => Recv, line => Line,
      nontail => unique([FA || T <- lists:reverse(NonTail),
                               FA <- case T of
                                         {M, F, A} -> [{F, A}];
                                         {_, _, _} -> [];
                                         Label -> [FA1 || {ok, FA1} <- [maps:find(Label, Labels)]]
                                     end])}.

%% Calls into a comprehension's function are its mechanics (the caller
%% starts it, it recurses over the list); what the comprehension's body
%% does (its calls, its receives) is done by the function it came from.
fold_comprehensions(Funs) ->
    Owner = maps:from_list([{FA, P} || FA <- maps:keys(Funs),
                                       {ok, P} <- [comprehension_owner(FA, Funs)]]),
    Top = fun Top(FA) ->
                  case maps:find(FA, Owner) of
                      {ok, P} -> Top(P);
                      error -> FA
                  end
          end,
    Kept = maps:without(maps:keys(Owner), Funs),
    maps:fold(fun(FA, #{calls := Cs, ext := Ext, recv := Recv, nontail := NT}, Acc) ->
                      maps:update_with(
                        Top(FA),
                        fun(#{calls := C0, ext := E0, recv := R0, nontail := NT0} = I) ->
                                I#{calls := C0 ++ Cs, ext := unique(E0 ++ Ext), recv := R0 or Recv,
                                   nontail := unique(NT0 ++ NT)}
                        end, Acc)
              end,
              maps:map(fun(_, I) -> strip_comprehension_calls(I, Owner) end, Kept),
              maps:map(fun(_, I) -> strip_comprehension_calls(I, Owner) end,
                       maps:with(maps:keys(Owner), Funs))).

strip_comprehension_calls(#{calls := Cs, nontail := NT} = I, Owner) ->
    I#{calls := [{FA, L} || {FA, L} <- Cs, not maps:is_key(FA, Owner)],
       nontail := [FA || FA <- NT, not maps:is_key(FA, Owner)]}.

%% '-f/1-lc$^0/1-0-' (also lbc, mc, …: any `$^' kind) came from f/1, or
%% from the fun or comprehension named before the kind.
comprehension_owner({Name, _}, Funs) ->
    case re:run(atom_to_binary(Name, utf8), <<"^-(.+)/([0-9]+)-[a-z]+\\$\\^[0-9]+/[0-9]+-[0-9]+-$">>,
                [{capture, all_but_first, binary}, unicode]) of
        {match, [F, A]} ->
            Parent = {binary_to_atom(F, utf8), binary_to_integer(A)},
            case maps:is_key(Parent, Funs) of
                true -> {ok, Parent};
                false -> error
            end;
        nomatch -> error
    end.

unique(L) -> unique(L, #{}).
unique([], _) -> [];
unique([X | T], Seen) ->
    case maps:is_key(X, Seen) of
        true -> unique(T, Seen);
        false -> [X | unique(T, Seen#{X => true})]
    end.

