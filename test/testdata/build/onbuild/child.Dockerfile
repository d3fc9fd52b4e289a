FROM berth-build-onbuild-parent
RUN echo "child sees TRIGGERED=$TRIGGERED" >> /trigger
CMD ["sh", "-c", "cat /parent /trigger /from-child-context.txt"]
