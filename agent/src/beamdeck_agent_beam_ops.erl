%%% @doc The BEAM generic instruction set: the operand count of each
%%% opcode, as documented by `lib/compiler/src/genop.tab' in OTP's sources
%%% (format number 0). Opcodes 1-183 are those of OTP 27; 184 (`debug_line')
%%% came with OTP 28, 185-191 (`bif3' and the native-record instructions)
%%% with OTP 29. Instructions marked obsolete there are still listed:
%%% their arity is a fact of the format, and the decoder must step over
%%% them in old beams. A newer OTP adds opcodes at the end; `arity/1' says
%%% `unknown' for them, so the decoder stops rather than misreads.
-module(beamdeck_agent_beam_ops).

-export([arity/1, max_opcode/0]).

%% Operand counts, opcode 1 first.
-define(ARITIES, {
    1, 3, 0, 2, 3, 2, 2, 3, 2, 4,             %%   1-10  label func_info int_code_end call call_last call_only call_ext call_ext_last bif0 bif1
    5, 2, 3, 2, 3, 2, 1, 1, 0, 0,             %%  11-20  bif2 allocate* test_heap init deallocate return send
    0, 0, 2, 1, 1, 2, 4, 4, 4, 4,             %%  21-30  remove_message timeout loop_rec loop_rec_end wait wait_timeout m_plus..m_div
    4, 4, 4, 4, 4, 4, 4, 3, 3, 3,             %%  31-40  int_div..int_bsr int_bnot is_lt is_ge
    3, 3, 3, 3, 2, 2, 2, 2, 2, 2,             %%  41-50  is_eq is_ne is_eq_exact is_ne_exact is_integer..is_reference
    2, 2, 2, 2, 2, 2, 2, 3, 3, 3,             %%  51-60  is_port..is_tuple test_arity select_val select_tuple_arity
    1, 2, 1, 2, 3, 3, 3, 3, 3, 2,             %%  61-70  jump catch catch_end move get_list get_tuple_element set_tuple_element put_string put_list put_tuple
    1, 1, 0, 1, 1, 3, 2, 2, 2, 5,             %%  71-80  put badmatch if_end case_end call_fun make_fun is_function call_ext_only bs_start_match bs_get_integer
    5, 5, 4, 2, 1, 1, 2, 2, 5, 5,             %%  81-90  bs_get_float bs_get_binary bs_skip_bits bs_test_tail bs_save bs_restore bs_init bs_final bs_put_integer bs_put_binary
    5, 2, 1, 0, 1, 2, 2, 4, 4, 4,             %%  91-100 bs_put_float bs_put_string bs_need_buf fclearerror fcheckerror fmove fconv fadd fsub fmul
    4, 3, 1, 2, 1, 1, 1, 2, 6, 3,             %% 101-110 fdiv fnegate make_fun2 try try_end try_case try_case_end raise bs_init2 bs_bits_to_bytes
    5, 1, 2, 2, 3, 5, 7, 7, 7, 5,             %% 111-120 bs_add apply apply_last is_boolean is_function2 bs_start_match2 bs_get_*2 bs_skip_bits2
    3, 2, 2, 5, 6, 2, 2, 2, 2, 1,             %% 121-130 bs_test_tail2 bs_save2 bs_restore2 gc_bif1 gc_bif2 bs_final2 bs_bits_to_bytes2 put_literal is_bitstr bs_context_to_binary
    3, 4, 0, 8, 6, 2, 6, 5, 4, 5,             %% 131-140 bs_test_unit bs_match_string bs_init_writable bs_append bs_private_append trim bs_init_bits bs_get_utf8 bs_skip_utf8 bs_get_utf16
    4, 5, 4, 3, 3, 3, 3, 3, 0, 1,             %% 141-150 bs_skip_utf16 bs_get_utf32 bs_skip_utf32 bs_utf8_size bs_put_utf8 bs_utf16_size bs_put_utf16 bs_put_utf32 on_load recv_mark
    1, 7, 1, 5, 5, 2, 3, 3, 4, 0,             %% 151-160 recv_set gc_bif3 line put_map_assoc put_map_exact is_map has_map_fields get_map_elements is_tagged_tuple build_stacktrace
    0, 2, 2, 2, 3, 4, 3, 2, 2, 4,             %% 161-170 raw_raise get_hd get_tl put_tuple2 bs_get_tail bs_start_match3 bs_get_position bs_set_position swap bs_start_match4
    3, 1, 2, 1, 1, 1, 6, 3, 0, 1,             %% 171-180 make_fun3 init_yregs recv_marker_bind/clear/reserve/use bs_create_bin call_fun2 nif_start badrecord
    5, 3, 2, 4, 6, 2, 4, 3, 6, 3,             %% 181-190 update_record bs_match executable_line debug_line bif3 is_any_native_record is_native_record get_record_elements put_record is_record_accessible
    5                                         %% 191     get_record_field
}).

%% @doc The number of operands of `Opcode', or `unknown' for an opcode
%% this table does not know (0, or one a newer OTP added).
-spec arity(Opcode) -> non_neg_integer() | unknown when Opcode :: non_neg_integer().
arity(Op) when Op >= 1, Op =< tuple_size(?ARITIES) -> element(Op, ?ARITIES);
arity(_) -> unknown.

%% @doc The highest opcode the table knows.
-spec max_opcode() -> pos_integer().
max_opcode() -> tuple_size(?ARITIES).
