"""What a tip and a line's gap sound like on the line: a tip's recording, or its text spoken in
its locale; a line's music bed between tips. A tip whose sound cannot be made keeps the reason
(`render_error`), which the marketing page shows, and is left out of the rotation."""

from audio.errors import AudioError
from audio.prompts import EncodedPrompt, PromptCache
from campaigns.audio_clips import ClipPrompts
from campaigns.hold_tips import HoldTips, Line, Tip
from campaigns.prompt_recordings import PromptView
from telephony.sip_backend import language_of


class HoldSounds:
    def __init__(self, prompts: PromptCache, clips: ClipPrompts) -> None:
        self._prompts = prompts
        self._clips = clips

    async def tip(self, tip: Tip) -> EncodedPrompt:
        """The tip as the caller hears it; raises `AudioError` (`SpeechError`) when its text
        cannot be spoken."""
        if tip.clip_id is not None:
            return await self._clips.prompt(tip.clip_id)
        assert tip.text is not None  # a tip has a text or a recording (hold_tips.checked_draft)
        return await self._prompts.from_text(tip.text, language_of(tip.locale))

    async def prompt(self, view: PromptView, words: str) -> EncodedPrompt:
        """A robot prompt as a call hears it: its recording, else `words` spoken in its
        locale (`PromptRecordings.spoken`)."""
        if view.recording is not None:
            return await self._clips.prompt(view.recording.id)
        return await self._prompts.from_text(words, language_of(view.text.locale))

    async def gap(self, line: Line) -> EncodedPrompt | None:
        """The line's music bed between tips, if it has one (else the gap is silence)."""
        return None if line.gap_clip_id is None else await self._clips.prompt(line.gap_clip_id)

    async def check(self, tips: HoldTips, tip: Tip) -> str | None:
        """Make the tip's sound now and note on the tip why it cannot be made, if it cannot."""
        try:
            await self.tip(tip)
            error = None
        except AudioError as exc:
            error = str(exc)
        if error != tip.render_error:
            tips.set_render_error(tip.id, tip.version, error)
        return error
