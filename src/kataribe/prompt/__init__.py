"""Prompt building: macros and the section assembler shared by chat, story and adventure modes."""
